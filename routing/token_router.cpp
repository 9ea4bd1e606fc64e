#include "routing/token_router.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"

namespace gemkit {

void validate(const TokenRouterOptions& o) {
  if (!(o.capacity > 0.0 && o.capacity <= 1.0))
    fail("TokenRouterOptions.capacity", "must be in (0, 1], got " + std::to_string(o.capacity));
  if (!(o.threshold > 0.0 && o.threshold < 1.0))
    fail("TokenRouterOptions.threshold", "must be in (0, 1), got " + std::to_string(o.threshold));
  if (!std::isfinite(o.initial_bias))
    fail("TokenRouterOptions.initial_bias", "must be finite");
  if (o.anneal_steps < 0)
    fail("TokenRouterOptions.anneal_steps", "must be >= 0, got " + std::to_string(o.anneal_steps));
}

double annealed_capacity(const TokenRouterOptions& o, int64_t step) {
  if (o.anneal_steps <= 0 || step >= o.anneal_steps) return o.capacity;
  if (step <= 0) return 1.0;
  const double t = static_cast<double>(step) / static_cast<double>(o.anneal_steps);
  return 1.0 + (o.capacity - 1.0) * t;
}

TokenRouter::TokenRouter(BlockPtr base, int64_t layer_index, const ModelConfig& config,
                         TokenRouterOptions options)
    : base_(std::dynamic_pointer_cast<DecoderBlock>(base)),
      layer_index_(layer_index),
      eps_(config.rms_norm_eps),
      options_(options),
      capacity_(options.capacity) {
  const std::string where = "TokenRouter(block " + std::to_string(layer_index) + ")";
  if (!base_) fail(where, "token routing needs a decoder block (Llama/Qwen2 layout)");
  validate(options_);
  // Same init scale as the model's linears (normal, std 0.02): small enough that the bias sets
  // the starting gate, large enough that tokens are not tied for top-k at step 0.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed * 1000003ULL + uint64_t(layer_index));
  weight = register_parameter("weight", at::randn({config.hidden_size}, gen) * 0.02);
  bias = register_parameter("bias", torch::full({}, options_.initial_bias));
}

void TokenRouter::set_capacity(double capacity) {
  if (!(capacity > 0.0 && capacity <= 1.0))
    fail("TokenRouter.capacity", "must be in (0, 1], got " + std::to_string(capacity));
  capacity_ = capacity;
}

torch::Tensor TokenRouter::logits(const torch::Tensor& h) const {
  // Normalised like RMSNorm (in fp32 at least) but without a learned scale: the router weight
  // already provides one, and the block's own norm weights stay untouched.
  auto dtype = h.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto x = h.to(dtype);
  x = x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return torch::matmul(x, weight.to(dtype)) + bias.to(dtype);
}

torch::Tensor TokenRouter::top_k_selection(const torch::Tensor& r, const torch::Tensor& valid) const {
  const int64_t B = r.size(0), T = r.size(1);
  auto real = valid.sum(1).to(torch::kCPU).to(torch::kInt64);
  std::vector<int64_t> k(static_cast<size_t>(B));
  int64_t k_max = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = real[b].item<int64_t>();
    // The small slack keeps c * T from rounding up past an exact integer (0.3 * 10).
    int64_t kb = n == 0 ? 0 : static_cast<int64_t>(std::ceil(capacity_ * n - 1e-9));
    kb = std::clamp<int64_t>(kb, n == 0 ? 0 : 1, n);
    k[static_cast<size_t>(b)] = kb;
    k_max = std::max(k_max, kb);
  }
  auto selected = torch::zeros({B, T}, valid.options());
  if (k_max == 0) return selected;
  auto masked = torch::where(valid, r, torch::full({}, -std::numeric_limits<double>::infinity(),
                                                   r.options()));
  auto top = std::get<1>(masked.topk(k_max, 1));  // [B, k_max]
  auto kt = torch::tensor(k, torch::kInt64).to(r.device()).unsqueeze(1);
  auto member = torch::arange(k_max, kt.options()).unsqueeze(0) < kt;  // rank < k_b
  return selected.scatter(1, top, member);
}

torch::Tensor TokenRouter::forward(const torch::Tensor& h, const BlockContext& ctx) {
  const int64_t B = h.size(0), T = h.size(1), H = h.size(2);
  auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(h.device());
  auto valid = ctx.token_valid.defined() ? ctx.token_valid : torch::ones({B, T}, bool_opts);
  const bool training = base_->is_training();

  auto r = logits(h);
  auto g = torch::sigmoid(r);
  auto top_k = top_k_selection(r.detach(), valid);
  auto by_threshold = (g.detach() > options_.threshold) & valid;
  auto selected = training || top_k_at_inference_ ? top_k : by_threshold;

  // Statistics (and the auxiliary loss) before the block runs.
  stats_ = TokenRouterStats{};
  stats_.real_tokens = valid.sum().item<int64_t>();
  stats_.processed_tokens = selected.sum().item<int64_t>();
  if (stats_.real_tokens > 0) {
    const double real = static_cast<double>(stats_.real_tokens);
    const int64_t agree = ((by_threshold == top_k) & valid).sum().item<int64_t>();
    stats_.realised_capacity = static_cast<double>(stats_.processed_tokens) / real;
    stats_.predictor_accuracy = static_cast<double>(agree) / real;
    totals_.real_tokens += stats_.real_tokens;
    totals_.processed_tokens += stats_.processed_tokens;
    totals_.predictor_agree += agree;
  }
  if (training && stats_.real_tokens > 0) {
    // The spec's "stop-gradient copy of the logit": the auxiliary BCE is computed on a logit
    // whose *input* is detached, r' = w . norm(stop_grad(h)) + b. Its gradient reaches only the
    // router's w and b, so (a) it cannot distort the trunk, and (b) the router keeps its main
    // signal, the language-model gradient through the gate g, while also learning to make
    // g > threshold predict top-k membership -- which is what the causal inference rule uses.
    // (A separate predictor head would need its own inference path; this reading does not.)
    auto r_aux = logits(h.detach());
    auto target = top_k.to(r_aux.scalar_type());
    auto per_token = torch::binary_cross_entropy_with_logits(
        r_aux, target, {}, {}, at::Reduction::None);
    stats_.aux_loss = (per_token * valid.to(per_token.scalar_type())).sum() /
                      static_cast<double>(stats_.real_tokens);
  }
  last_selection_ = selected;

  auto counts = selected.sum(1);
  const int64_t K = counts.max().item<int64_t>();
  if (K == 0) return options_.attention_only ? h + base_->mlp_update(h) : h;

  // Gather: the chosen tokens of each row first, in their original (causal) order. Rows with
  // fewer than K chosen tokens are filled with unchosen ones marked invalid (they are masked as
  // keys, and their update is dropped below).
  auto index = torch::arange(T, counts.options()).unsqueeze(0).expand({B, T});
  auto order = torch::where(selected, index, index + T).argsort(/*dim=*/int64_t{1}).narrow(1, 0, K);  // [B, K]
  auto sub_valid = selected.gather(1, order);
  const bool all_valid = (counts == K).all().item<bool>();
  auto index_h = order.unsqueeze(-1).expand({B, K, H});

  BlockContext sub = ctx;
  sub.positions = ctx.positions.gather(1, order);
  if (ctx.cos.defined()) {
    auto index_d = order.unsqueeze(-1).expand({B, K, ctx.cos.size(2)});
    sub.cos = ctx.cos.expand({B, T, ctx.cos.size(2)}).gather(1, index_d);
    sub.sin = ctx.sin.expand({B, T, ctx.sin.size(2)}).gather(1, index_d);
  }
  // Left undefined when every slot is a real token, so the block keeps the library's fast
  // causal attention path (the subset is in causal order).
  sub.token_valid = (ctx.token_valid.defined() || !all_valid) ? sub_valid : torch::Tensor();
  if (ctx.segments.defined()) sub.segments = ctx.segments.gather(1, order);

  auto h_sub = h.gather(1, index_h);
  auto g_sub = g.gather(1, order).unsqueeze(-1).to(h.scalar_type());
  auto keep = sub_valid.unsqueeze(-1);
  auto zero = torch::zeros({}, h.options());
  auto a = base_->attention_update(h_sub, sub);
  if (options_.attention_only) {
    auto x = h.scatter(1, index_h, h_sub + torch::where(keep, g_sub * a, zero));
    return x + base_->mlp_update(x);
  }
  auto update = a + base_->mlp_update(h_sub + a);  // the block's whole residual update
  // Scatter: unchosen tokens keep h exactly (the filler slots write back their own h).
  return h.scatter(1, index_h, h_sub + torch::where(keep, g_sub * update, zero));
}

std::vector<int64_t> default_routed_blocks(int64_t num_blocks) {
  std::vector<int64_t> blocks;
  for (int64_t i = 1; i < num_blocks - 1; i += 2) blocks.push_back(i);
  return blocks;
}

TokenRoutersImpl::TokenRoutersImpl(Transformer model, const std::vector<int64_t>& blocks,
                                   const TokenRouterOptions& options)
    : model_(std::move(model)) {
  const auto& config = model_->config();
  if (config.family != Family::Decoder)
    fail("TokenRouters", "token routing needs a decoder model (the encoder is not causal)");
  validate(options);
  auto params = model_->parameters();
  const auto dtype = params.empty() ? torch::kFloat : params.front().scalar_type();
  auto scope = register_module("routers", Scope());
  for (int64_t i : blocks) {
    if (i < 0 || i >= model_->num_blocks())
      fail("TokenRouters", "block " + std::to_string(i) + " out of range [0, " +
                               std::to_string(model_->num_blocks()) + ")");
    auto router = std::make_shared<TokenRouter>(model_->base_block(i), i, config, options);
    router->to(model_->device(), dtype);
    scope->register_module(std::to_string(i), router);
    model_->set_block(i, router);
    routers_.push_back(router);
  }
}

void TokenRoutersImpl::set_step(int64_t step) {
  for (auto& r : routers_) r->set_step(step);
}

torch::Tensor TokenRoutersImpl::aux_loss() const {
  torch::Tensor total;
  for (const auto& r : routers_) {
    const auto& l = r->stats().aux_loss;
    if (!l.defined()) continue;
    total = total.defined() ? total + l : l;
  }
  return total.defined() ? total : torch::zeros({}, torch::TensorOptions().device(model_->device()));
}

void TokenRoutersImpl::uninstall() {
  for (auto& r : routers_) model_->set_block(r->layer_index(), nullptr);
}

}  // namespace gemkit
