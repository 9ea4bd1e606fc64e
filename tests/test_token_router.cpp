// Dynamic Token Router (routing/token_router.h): gather -> compute -> scatter is exact, the
// selection rules (top-k in training, threshold at inference) are what the spec says, the gate
// carries a correct gradient, and wrapping leaves the base model's parameters alone.
#include "routing/token_router.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "model/layers.h"
#include "tests/test_util.h"

using namespace gemkit;

namespace {

ModelConfig config4() { return test::tiny_decoder_config(4); }

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// The context the Transformer gives a block for plain positions [B, T].
BlockContext context_for(const ModelConfig& c, const torch::Tensor& positions,
                         torch::ScalarType dtype) {
  Rope rope;
  rope.theta = c.rope_theta;
  rope.head_dim = c.head_dim();
  rope.scaling = c.rope_scaling;
  BlockContext ctx;
  ctx.positions = positions;
  std::tie(ctx.cos, ctx.sin) = rope.tables(positions, dtype);
  ctx.causal = true;
  return ctx;
}

BlockContext context_for(const ModelConfig& c, int64_t B, int64_t T) {
  return context_for(c, torch::arange(T).unsqueeze(0).expand({B, T}).contiguous(), torch::kFloat);
}

std::set<std::string> names(const torch::nn::Module& m) {
  std::set<std::string> out;
  for (const auto& p : m.named_parameters()) out.insert(p.key());
  return out;
}

}  // namespace

TEST(TokenRouter, FullCapacityWithGateOneIsTheDenseModel) {
  torch::manual_seed(1);
  Transformer m(config4());
  m->train();
  auto ids = torch::randint(50, {2, 9});
  auto dense = m->forward(ids).logits;
  TokenRouterOptions o;
  o.capacity = 1.0;
  o.initial_bias = 1e4;  // sigmoid(1e4) is exactly 1 in float
  TokenRouters routers(m, std::vector<int64_t>{1, 2}, o);
  auto routed = m->forward(ids).logits;
  EXPECT_LT(max_abs_diff(routed, dense), 1e-5);
  for (const auto& r : routers->routers()) {
    EXPECT_EQ(r->stats().processed_tokens, 18);
    EXPECT_DOUBLE_EQ(r->stats().realised_capacity, 1.0);
  }
}

TEST(TokenRouter, HalfCapacityLeavesUnselectedTokensExactlyUnchanged) {
  torch::manual_seed(2);
  auto c = config4();
  Transformer m(c);
  m->train();
  TokenRouterOptions o;
  o.capacity = 0.5;
  auto router = std::make_shared<TokenRouter>(m->base_block(1), 1, c, o);
  const int64_t B = 3, T = 7;
  auto h = torch::randn({B, T, c.hidden_size});
  auto ctx = context_for(c, B, T);
  auto out = router->forward(h, ctx);
  auto sel = router->last_selection();
  const int64_t k = static_cast<int64_t>(std::ceil(0.5 * T));  // 4
  EXPECT_TRUE((sel.sum(1) == k).all().item<bool>());
  EXPECT_EQ(router->stats().processed_tokens, B * k);
  auto unsel = ~sel;
  EXPECT_TRUE(torch::equal(out.index({unsel}), h.index({unsel})));
  EXPECT_GT(max_abs_diff(out.index({sel}), h.index({sel})), 1e-3);

  // With padding the capacity counts real tokens only, and padding is never selected.
  auto valid = torch::ones({B, T}, torch::kBool);
  valid.index_put_({1, torch::indexing::Slice(0, 2)}, false);  // row 1: 5 real tokens
  ctx.token_valid = valid;
  ctx.positions = (valid.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);
  auto ctx2 = context_for(c, ctx.positions, torch::kFloat);
  ctx2.token_valid = valid;
  out = router->forward(h, ctx2);
  sel = router->last_selection();
  EXPECT_EQ(sel[1].sum().item<int64_t>(), 3);  // ceil(0.5 * 5)
  EXPECT_FALSE((sel & ~valid).any().item<bool>());
  EXPECT_TRUE(torch::equal(out.index({~sel}), h.index({~sel})));
}

TEST(TokenRouter, SelectedTokensGetTheBlockRunOnTheGatheredSequence) {
  torch::manual_seed(3);
  auto c = config4();
  Transformer m(c);
  m->train();
  TokenRouterOptions o;
  o.capacity = 0.4;
  auto router = std::make_shared<TokenRouter>(m->base_block(2), 2, c, o);
  const int64_t B = 2, T = 10;
  auto h = torch::randn({B, T, c.hidden_size});
  auto out = router->forward(h, context_for(c, B, T));
  auto sel = router->last_selection();
  auto g = torch::sigmoid(router->logits(h));
  for (int64_t b = 0; b < B; ++b) {
    auto idx = sel[b].nonzero().squeeze(1);  // ascending: causal order
    ASSERT_EQ(idx.size(0), 4);
    auto h_sel = h[b].index_select(0, idx).unsqueeze(0);
    auto ctx = context_for(c, idx.unsqueeze(0), torch::kFloat);
    auto dense = m->base_block(2)->forward(h_sel, ctx);
    auto gate = g[b].index_select(0, idx).view({1, -1, 1});
    auto expected = h_sel + gate * (dense - h_sel);
    EXPECT_LT(max_abs_diff(out[b].index_select(0, idx).unsqueeze(0), expected), 1e-5);
  }
}

TEST(TokenRouter, AttentionOnlyRunsTheMlpOnEveryToken) {
  torch::manual_seed(4);
  auto c = config4();
  Transformer m(c);
  m->train();
  TokenRouterOptions o;
  o.capacity = 0.5;
  o.attention_only = true;
  auto router = std::make_shared<TokenRouter>(m->base_block(1), 1, c, o);
  auto h = torch::randn({1, 6, c.hidden_size});
  auto out = router->forward(h, context_for(c, 1, 6));
  auto unsel = ~router->last_selection();
  auto base = std::dynamic_pointer_cast<DecoderBlock>(m->base_block(1));
  auto expected = h + base->mlp_update(h);
  EXPECT_LT(max_abs_diff(out.index({unsel}), expected.index({unsel})), 1e-6);
}

TEST(TokenRouter, RouterGradientMatchesFiniteDifferences) {
  // At block level: the model's RMSNorm normalises in fp32 even for a float64 model (as Hugging
  // Face does), so downstream blocks would add fp32 noise to a float64 finite difference. Within
  // the routed block the router changes only the gate (the selection is fixed for a tiny step),
  // so the check sees the gradient through g with float64 arithmetic.
  torch::manual_seed(5);
  auto c = config4();
  Transformer m(c);
  m->to(torch::kDouble);
  m->train();
  TokenRouterOptions o;
  o.capacity = 0.5;
  o.initial_bias = 0.5;  // mid-range gate: a large, well-conditioned gradient
  auto router = std::make_shared<TokenRouter>(m->base_block(1), 1, c, o);
  router->to(torch::kDouble);
  ASSERT_EQ(router->weight.scalar_type(), torch::kDouble);
  const int64_t B = 2, T = 8;
  auto h = torch::randn({B, T, c.hidden_size}, torch::kDouble);
  auto ctx = context_for(c, torch::arange(T).unsqueeze(0).expand({B, T}).contiguous(), torch::kDouble);
  auto probe = torch::randn({B, T, c.hidden_size}, torch::kDouble);
  auto objective = [&] { return (router->forward(h, ctx) * probe).sum(); };

  auto loss = objective();
  loss.backward();
  auto grad_w = router->weight.grad().clone();
  auto grad_b = router->bias.grad().clone();
  const double eps = 1e-6;
  auto check = [&](torch::Tensor param, int64_t i, double analytic) {
    torch::NoGradGuard no_grad;
    auto flat = param.view({-1});
    const double x0 = flat[i].item<double>();
    flat[i].fill_(x0 + eps);
    const double up = objective().item<double>();
    flat[i].fill_(x0 - eps);
    const double down = objective().item<double>();
    flat[i].fill_(x0);
    const double numeric = (up - down) / (2 * eps);
    const double rel = std::abs(analytic - numeric) / std::max(1e-8, std::abs(numeric));
    EXPECT_LT(rel, 1e-4) << "coordinate " << i << ": analytic " << analytic << " numeric " << numeric;
  };
  for (int64_t i : {0, 7, 19, 31}) check(router->weight, i, grad_w[i].item<double>());
  check(router->bias, 0, grad_b.item<double>());
  EXPECT_GT(grad_b.abs().item<double>(), 0.0);
}

TEST(TokenRouter, AuxiliaryLossTrainsOnlyTheRouter) {
  torch::manual_seed(6);
  Transformer m(config4());
  m->train();
  TokenRouterOptions o;
  o.capacity = 0.5;
  TokenRouters routers(m, std::vector<int64_t>{1}, o);
  m->forward(torch::randint(50, {2, 8}));
  auto aux = routers->aux_loss();
  ASSERT_TRUE(aux.defined());
  EXPECT_GT(aux.item<double>(), 0.0);
  aux.backward();
  auto router = routers->routers().front();
  EXPECT_TRUE(router->weight.grad().defined());
  for (const auto& p : m->parameters()) EXPECT_FALSE(p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
  const auto& s = router->stats();
  EXPECT_DOUBLE_EQ(s.realised_capacity, 0.5);
  EXPECT_GE(s.predictor_accuracy, 0.0);
  EXPECT_LE(s.predictor_accuracy, 1.0);
}

TEST(TokenRouter, EvalProcessesExactlyTheTokensAboveThresholdAndDecodesWithTheCache) {
  torch::manual_seed(7);
  auto c = config4();
  Transformer m(c);
  TokenRouterOptions o;
  o.threshold = 0.5;
  TokenRouters routers(m, std::vector<int64_t>{1, 2}, o);
  for (const auto& r : routers->routers()) {
    torch::NoGradGuard no_grad;
    r->weight.normal_(0.0, 1.0);  // a spread of gates on both sides of the threshold
    r->bias.fill_(0.0);
  }
  m->eval();
  torch::NoGradGuard no_grad;

  // Block level: the selection is the threshold rule.
  auto router = routers->routers().front();
  const int64_t T = 12;
  auto h = torch::randn({2, T, c.hidden_size});
  auto out = router->forward(h, context_for(c, 2, T));
  auto expected = torch::sigmoid(router->logits(h)) > 0.5;
  EXPECT_TRUE(torch::equal(router->last_selection(), expected));
  const int64_t n = expected.sum().item<int64_t>();
  ASSERT_GT(n, 0);
  ASSERT_LT(n, 2 * T);
  EXPECT_TRUE(torch::equal(out.index({~expected}), h.index({~expected})));

  // Model level: the rule is causal, so a full forward equals token-by-token decoding, and the
  // routed block's cache holds only the tokens it processed.
  auto ids = torch::randint(50, {1, T});
  auto full = m->forward(ids).logits;
  const int64_t processed_full = router->stats().processed_tokens;
  ASSERT_GT(processed_full, 0);
  ASSERT_LT(processed_full, T);
  auto cache = m->make_cache();
  ForwardOptions fo;
  fo.cache = &cache;
  int64_t processed_steps = 0;
  for (int64_t t = 0; t < T; ++t) {
    auto step = m->forward(ids.narrow(1, t, 1), fo).logits;
    processed_steps += router->stats().processed_tokens;
    EXPECT_LT(max_abs_diff(step, full.narrow(1, t, 1)), 1e-4) << "token " << t;
  }
  EXPECT_EQ(processed_steps, processed_full);
  EXPECT_EQ(cache.layer(1).length(), processed_full);
  EXPECT_EQ(cache.layer(0).length(), T);
}

TEST(TokenRouter, WrappingLeavesTheBaseParametersAlone) {
  torch::manual_seed(8);
  Transformer m(config4());
  const auto before = names(*m);
  std::vector<torch::Tensor> values;
  for (const auto& p : m->parameters()) values.push_back(p.detach().clone());
  TokenRouters routers(m, default_routed_blocks(m->num_blocks()), TokenRouterOptions{});
  EXPECT_EQ(names(*m), before);
  auto after = m->parameters();
  ASSERT_EQ(after.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_TRUE(torch::equal(after[i], values[i]));
  EXPECT_EQ(names(*routers), (std::set<std::string>{"routers.1.weight", "routers.1.bias"}));
  EXPECT_EQ(m->block(1), routers->routers().front());
  EXPECT_DOUBLE_EQ(routers->routers().front()->bias.item<double>(), 3.0);
  routers->uninstall();
  EXPECT_EQ(m->block(1), m->base_block(1));
}

TEST(TokenRouter, DefaultBlocksSkipFirstAndLast) {
  EXPECT_EQ(default_routed_blocks(2), std::vector<int64_t>{});
  EXPECT_EQ(default_routed_blocks(4), (std::vector<int64_t>{1}));
  EXPECT_EQ(default_routed_blocks(7), (std::vector<int64_t>{1, 3, 5}));
}

TEST(TokenRouter, CapacityAnnealsLinearlyFromOne) {
  TokenRouterOptions o;
  o.capacity = 0.25;
  o.anneal_steps = 100;
  EXPECT_DOUBLE_EQ(annealed_capacity(o, 0), 1.0);
  EXPECT_DOUBLE_EQ(annealed_capacity(o, 50), 0.625);
  EXPECT_DOUBLE_EQ(annealed_capacity(o, 100), 0.25);
  EXPECT_DOUBLE_EQ(annealed_capacity(o, 1000), 0.25);
  o.anneal_steps = 0;
  EXPECT_DOUBLE_EQ(annealed_capacity(o, 0), 0.25);
}

TEST(TokenRouter, BadOptionsAreNamed) {
  TokenRouterOptions o;
  o.capacity = 0.0;
  try {
    validate(o);
    FAIL() << "expected gemkit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TokenRouterOptions.capacity"), std::string::npos);
  }
  auto enc = test::tiny_decoder_config();
  enc.family = Family::Encoder;
  enc.architecture = "BertForMaskedLM";
  EXPECT_THROW(TokenRouter(nullptr, 0, enc, TokenRouterOptions{}), Error);
}

TEST(TokenRouter, TopKAtInferenceUsesTheTrainingRuleInEvalMode) {
  torch::manual_seed(11);
  auto c = config4();
  Transformer m(c);
  TokenRouterOptions o;
  o.capacity = 0.25;
  TokenRouters routers(m, std::vector<int64_t>{1}, o);
  m->eval();
  torch::NoGradGuard no_grad;
  auto router = routers->routers().front();
  auto h = torch::randn({2, 12, c.hidden_size});
  router->forward(h, context_for(c, 2, 12));
  EXPECT_EQ(router->stats().processed_tokens, 24);  // initial gate 0.95: every token passes the threshold
  router->set_top_k_at_inference(true);
  router->forward(h, context_for(c, 2, 12));
  EXPECT_EQ(router->stats().processed_tokens, 6);  // ceil(0.25 * 12) per sequence
}
