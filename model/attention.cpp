#include "model/attention.h"

#include <limits>

#include "core/torch_compat.h"

namespace gemkit {

// The most negative finite value of a floating dtype: softmax gives it weight exactly 0 next to
// any allowed score, and a row with no allowed key stays finite (uniform) instead of NaN.
static double lowest_finite(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat64: return std::numeric_limits<double>::lowest();
    case torch::kFloat16: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case torch::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    default: return std::numeric_limits<float>::lowest();
  }
}

torch::Tensor build_attention_mask(const torch::Tensor& query_positions,
                                   const torch::Tensor& key_positions,
                                   const torch::Tensor& key_valid, bool causal,
                                   torch::ScalarType dtype,
                                   const torch::Tensor& query_segments,
                                   const torch::Tensor& key_segments) {
  const int64_t B = query_positions.size(0), T = query_positions.size(1);
  const int64_t S = key_positions.size(1);
  torch::Tensor allowed;
  if (key_valid.defined())
    allowed = key_valid.unsqueeze(1).expand({B, T, S});
  else
    allowed = torch::ones({B, T, S}, query_positions.options().dtype(torch::kBool));
  if (causal) allowed = allowed & (key_positions.unsqueeze(1) <= query_positions.unsqueeze(2));
  if (query_segments.defined())
    allowed = allowed & (key_segments.unsqueeze(1) == query_segments.unsqueeze(2));
  auto opts = torch::TensorOptions().dtype(dtype).device(query_positions.device());
  auto lowest = torch::full({}, lowest_finite(dtype), opts);
  return torch::where(allowed, torch::zeros({}, opts), lowest).unsqueeze(1);
}

// Grouped-query attention: each kv head serves heads/kv_heads query heads (HF repeat_kv).
static torch::Tensor repeat_kv(const torch::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const auto B = x.size(0), H = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, H, n_rep, S, D}).reshape({B, H * n_rep, S, D});
}

torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const BlockContext& ctx) {
  const int64_t B = q.size(0), heads = q.size(1), T = q.size(2), D = q.size(3);
  torch::Tensor keys = k, values = v, key_positions = ctx.positions, key_valid = ctx.token_valid;
  if (ctx.kv) {
    auto valid = ctx.token_valid.defined()
                     ? ctx.token_valid
                     : torch::ones({B, T}, ctx.positions.options().dtype(torch::kBool));
    ctx.kv->append(k, v, ctx.positions, valid);
    keys = ctx.kv->keys();
    values = ctx.kv->values();
    key_positions = ctx.kv->key_positions();
    key_valid = ctx.kv->key_valid();
  }
  const int64_t n_rep = heads / keys.size(1);
  keys = repeat_kv(keys, n_rep);
  values = repeat_kv(values, n_rep);

  torch::Tensor out;
  const bool plain = !ctx.kv && !ctx.token_valid.defined() && !ctx.segments.defined();
  if (plain) {
    // Full sequence, no padding: the library's own masking (fast kernels in LibTorch 2.x).
    out = compat::scaled_dot_product_attention(q, keys, values, c10::nullopt, ctx.causal);
  } else {
    torch::Tensor mask;
    if (ctx.segments.defined()) {
      // Packed documents: positions restart in each segment, so order comes from the token
      // index (keys are these same tokens: no cache with segments).
      auto index = torch::arange(T, ctx.positions.options()).unsqueeze(0).expand({B, T});
      mask = build_attention_mask(index, index, key_valid, ctx.causal, q.scalar_type(),
                                  ctx.segments, ctx.segments);
    } else {
      mask = build_attention_mask(ctx.positions, key_positions, key_valid, ctx.causal,
                                  q.scalar_type());
    }
    out = compat::scaled_dot_product_attention(q, keys, values, mask, false);
  }
  return out.transpose(1, 2).reshape({B, T, heads * D});
}

}  // namespace gemkit
