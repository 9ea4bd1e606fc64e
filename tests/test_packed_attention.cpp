// Packed documents (ForwardOptions::segment_ids): a row [docA docB pad] gives each document the
// logits and the gradients it gets when run alone, in the decoder and in the encoder.
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include <torch/torch.h>

#include "core/error.h"
#include "model/transformer.h"

using namespace gemkit;

namespace {

ModelConfig decoder_config() {
  ModelConfig c = test::tiny_decoder_config();
  c.attention_bias = true;
  return c;
}

ModelConfig encoder_config() {
  ModelConfig c;
  c.family = Family::Encoder;
  c.head = Head::MaskedLM;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.max_position_embeddings = 32;
  c.hidden_act = "gelu";
  return c;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

struct Packed {
  torch::Tensor ids, segments, mask;
  std::vector<torch::Tensor> docs;  // [1, len] each
  std::vector<int64_t> starts;
};

// Two rows: [A(5) B(7) pad(4)] and [C(9) D(3) E(4)].
Packed make_packed(int64_t vocab) {
  torch::manual_seed(3);
  Packed p;
  const std::vector<std::vector<int64_t>> rows = {{5, 7}, {9, 3, 4}};
  const int64_t T = 16;
  p.ids = torch::zeros({2, T}, torch::kInt64);
  p.segments = torch::full({2, T}, -1, torch::kInt64);
  p.mask = torch::zeros({2, T}, torch::kInt64);
  for (int64_t r = 0; r < 2; ++r) {
    int64_t at = 0, seg = 0;
    for (int64_t len : rows[size_t(r)]) {
      auto doc = torch::randint(1, vocab, {1, len}, torch::kInt64);
      p.ids[r].narrow(0, at, len).copy_(doc[0]);
      p.segments[r].narrow(0, at, len).fill_(seg++);
      p.mask[r].narrow(0, at, len).fill_(1);
      p.docs.push_back(doc);
      p.starts.push_back(r * T + at);
      at += len;
    }
  }
  return p;
}

// The packed forward must equal each document's own forward, logits and gradients.
void check_packed_equals_separate(Transformer model, int64_t vocab) {
  Packed p = make_packed(vocab);
  ForwardOptions o;
  o.segment_ids = p.segments;
  o.attention_mask = p.mask;
  auto packed = model->forward(p.ids, o).logits;  // [2, T, V]
  auto flat = packed.reshape({-1, packed.size(2)});

  // Objective: a fixed random weighting of the real positions' logits, so gradients compare.
  torch::manual_seed(9);
  auto weights = torch::randn_like(flat);
  torch::Tensor packed_objective = torch::zeros({});
  torch::Tensor separate_objective = torch::zeros({});
  for (size_t d = 0; d < p.docs.size(); ++d) {
    const int64_t len = p.docs[d].size(1);
    auto alone = model->forward(p.docs[d]).logits[0];  // [len, V]
    auto in_row = flat.narrow(0, p.starts[d], len);
    EXPECT_LT(max_abs_diff(in_row, alone), 1e-5) << "document " << d;
    auto w = weights.narrow(0, p.starts[d], len);
    packed_objective = packed_objective + (in_row * w).sum();
    separate_objective = separate_objective + (alone * w).sum();
  }
  model->zero_grad();
  packed_objective.backward();
  std::vector<torch::Tensor> packed_grads;
  for (const auto& param : model->parameters()) packed_grads.push_back(param.grad().clone());
  model->zero_grad();
  separate_objective.backward();
  size_t i = 0;
  double largest = 0;
  for (const auto& param : model->parameters()) {
    ASSERT_TRUE(packed_grads[i].defined());
    EXPECT_LT(max_abs_diff(packed_grads[i], param.grad()), 1e-4) << i;
    largest = std::max(largest, packed_grads[i].abs().max().item<double>());
    ++i;
  }
  EXPECT_GT(largest, 0.0) << "gradients flow through the packed row";

  // Without segments the documents of a row would see each other: the check is not vacuous.
  ForwardOptions plain;
  plain.attention_mask = p.mask;
  auto unsegmented = model->forward(p.ids, plain).logits.reshape({-1, packed.size(2)});
  const int64_t b = p.starts[1], len_b = p.docs[1].size(1);
  EXPECT_GT(max_abs_diff(unsegmented.narrow(0, b, len_b), flat.narrow(0, b, len_b)), 1e-3);
}

}  // namespace

TEST(PackedAttention, DecoderRowEqualsDocumentsAlone) {
  Transformer model(decoder_config());
  check_packed_equals_separate(model, 50);
}

TEST(PackedAttention, EncoderRowEqualsDocumentsAlone) {
  Transformer model(encoder_config());
  check_packed_equals_separate(model, 40);
}

TEST(PackedAttention, SegmentsWithoutPaddingAndExplicitPositions) {
  Transformer model(decoder_config());
  Packed p = make_packed(50);
  // Row 1 has no padding: segments alone (no attention_mask) take the masked path too.
  ForwardOptions o;
  o.segment_ids = p.segments.narrow(0, 1, 1);
  auto row = model->forward(p.ids.narrow(0, 1, 1), o).logits[0];
  for (size_t d = 2; d < 5; ++d) {
    auto alone = model->forward(p.docs[d]).logits[0];
    EXPECT_LT(max_abs_diff(row.narrow(0, p.starts[d] - 16, p.docs[d].size(1)), alone), 1e-5) << d;
  }
  // Explicit position_ids win over the restart. (RoPE is relative, so a constant offset would
  // not show: stretch the distances.)
  ForwardOptions explicit_positions = o;
  explicit_positions.position_ids = torch::arange(16, torch::kInt64).unsqueeze(0) * 2;
  auto shifted = model->forward(p.ids.narrow(0, 1, 1), explicit_positions).logits[0];
  EXPECT_GT(max_abs_diff(shifted.narrow(0, 9, 3), row.narrow(0, 9, 3)), 1e-4);

  KVCache cache = model->make_cache();
  o.cache = &cache;
  EXPECT_THROW(model->forward(p.ids.narrow(0, 1, 1), o), Error);
  ForwardOptions wrong;
  wrong.segment_ids = torch::zeros({1, 3}, torch::kInt64);
  EXPECT_THROW(model->forward(p.ids, wrong), Error);
}
