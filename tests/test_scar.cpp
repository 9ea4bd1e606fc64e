// SCAR (routing/scar.h, routing/expert_router.h) and the GEM modules container
// (routing/gem_modules.h): the variable-k rule, sparse expert compute equal to the dense
// formula, routing that is causal (KV-cache decoding at batch 1 equals the full forward, also
// with the token router on), gradients of the router checked by finite differences, the losses,
// and checkpoint round trips.
#include "routing/scar.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "formats/safetensors.h"
#include "model/lora.h"
#include "routing/expert_router.h"
#include "routing/gem_modules.h"
#include "tests/scar_test_util.h"
#include "tests/test_util.h"

using namespace gemkit;

namespace {

ModelConfig config3() { return test::tiny_decoder_config(3); }

ScarOptions two_experts() {
  ScarOptions o = test::two_scar_experts();
  o.seed = 3;
  return o;
}

// SCAR with two domain experts and the token router on its default blocks, gates mid-range.
GemConfig scar_and_dtr() {
  GemConfig g;
  g.scar = true;
  g.scar_options = two_experts();
  g.dtr = true;
  g.dtr_options.initial_bias = 0.0;
  return g;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

void add_tensor(SafetensorsWriter& w, const std::string& name, const torch::Tensor& t) {
  auto c = std::make_shared<torch::Tensor>(t.detach().to(torch::kFloat).contiguous());
  w.add(name, DType::F32, c->sizes().vec(), c->data_ptr(), c->nbytes(), c);
}

}  // namespace

TEST(ExpertRouter, VariableKTakesExpertsUntilTheMassIsReached) {
  // Probabilities (as logits = log p): a confident row, an ambiguous one, one capped by k_max.
  auto p = torch::tensor({{0.70, 0.20, 0.10}, {0.40, 0.35, 0.25}, {0.34, 0.33, 0.33}}, torch::kDouble);
  auto r = select_by_mass(torch::log(p), 0.65, 2);
  auto expected = torch::tensor({{1, 0, 0}, {1, 1, 0}, {1, 1, 0}}, torch::kBool);
  EXPECT_TRUE(torch::equal(r.chosen, expected));
  EXPECT_LT(max_abs_diff(r.probs, p), 1e-12);
  EXPECT_LT(max_abs_diff(r.gates.sum(1), torch::ones({3}, torch::kDouble)), 1e-12);
  EXPECT_NEAR(r.gates[1][0].item<double>(), 0.40 / 0.75, 1e-12);
  EXPECT_NEAR(r.gates[1][1].item<double>(), 0.35 / 0.75, 1e-12);
  // k_max = 3 lets the third row take all three (0.34 + 0.33 < 0.65 before the third).
  auto r3 = select_by_mass(torch::log(p), 0.65, 3);
  EXPECT_EQ(r3.chosen[2].sum().item<int64_t>(), 2);  // 0.67 >= 0.65 after two
  auto r9 = select_by_mass(torch::log(p), 0.99, 3);
  EXPECT_EQ(r9.chosen[2].sum().item<int64_t>(), 3);
}

TEST(ExpertRouter, GeneralBiasShiftsTheFirstExpertsLogitOnly) {
  ExpertRouterOptions o;
  o.router_dim = 8;
  ExpertRouter plain(16, 3, o, 1e-6, 5);
  o.general_bias = 2.0;
  ExpertRouter biased(16, 3, o, 1e-6, 5);  // same seed: same query and keys
  auto x = torch::randn({6, 16});
  auto a = plain->route(x), b = biased->route(x);
  EXPECT_LT(max_abs_diff(b.logits.select(1, 0), a.logits.select(1, 0) + 2.0), 1e-5);
  EXPECT_LT(max_abs_diff(b.logits.slice(1, 1), a.logits.slice(1, 1)), 1e-6);
  // The odds of expert 0 against any other rise by e^2.
  EXPECT_LT(max_abs_diff(b.probs.select(1, 0) / b.probs.select(1, 1),
                         a.probs.select(1, 0) / a.probs.select(1, 1) * std::exp(2.0)), 1e-3);
  o.general_bias = std::nan("");
  test::expect_error([&] { validate(o); }, {"ExpertRouterOptions.general_bias", "finite"});
}

TEST(Scar, FreshExpertsLeaveTheModelUnchanged) {
  torch::manual_seed(1);
  Transformer m(config3());
  auto ids = torch::randint(50, {2, 9});
  auto base = m->forward(ids).logits;
  Scar scar(m, two_experts());
  EXPECT_EQ(scar.expert_names(), (std::vector<std::string>{"general", "law", "finance"}));
  EXPECT_TRUE(torch::equal(m->forward(ids).logits, base));  // B = 0
}

TEST(Scar, ForcedExpertEqualsTheMergedWeights) {
  // Sending every token to expert e must equal the base model with W + scale * B_e A_e in every
  // targeted linear: an independent check of the gather / compute / scatter path.
  torch::manual_seed(2);
  Transformer m(config3());
  m->eval();
  auto ids = torch::randint(50, {2, 11});
  auto base = m->forward(ids).logits;
  Scar scar(m, two_experts());
  test::randomise_experts(scar);
  torch::NoGradGuard no_grad;
  for (const std::string expert : {"law", "finance"}) {
    scar.set_forced_expert(scar.expert_index(expert));
    auto routed = m->forward(ids).logits;
    EXPECT_GT(max_abs_diff(routed, base), 1e-3) << expert;
    Transformer merged(config3());
    merged->eval();
    for (auto& p : merged->named_parameters()) p.value().copy_(m->named_parameters()[p.key()]);
    for (const auto& [name, delta] : scar.weight_deltas(expert)) merged->named_parameters()[name].add_(delta);
    EXPECT_LT(max_abs_diff(routed, merged->forward(ids).logits), 1e-5) << expert;
  }
  scar.set_forced_expert(scar.expert_index("general"));
  EXPECT_LT(max_abs_diff(m->forward(ids).logits, base), 1e-6);
}

TEST(Scar, RoutedOutputIsTheGatedSumOfExpertsPerToken) {
  // One linear's output under routing equals the per-token formula
  // y_i = W x_i + sum_e g_ie * scale * B_e A_e x_i computed densely from the router's decision.
  torch::manual_seed(3);
  Transformer m(config3());
  ScarOptions o = two_experts();
  o.target_modules = {"q_proj"};
  o.blocks = {1};
  o.router.max_experts = 3;
  Scar scar(m, o);
  test::randomise_experts(scar);
  Linear q = m->linear("model.layers.1.self_attn.q_proj");
  auto x = torch::randn({2, 7, 32});
  auto y = q->forward(x);
  auto routers = scar.named_parameters();
  ExpertRouter router(32, 3, o.router, m->config().rms_norm_eps, 0);
  router->query.detach().copy_(routers.at("routers.1.query"));
  router->keys.detach().copy_(routers.at("routers.1.keys"));
  auto r = router->route(x.reshape({-1, 32}));
  ASSERT_GT((r.chosen.sum(1) > 1).sum().item<int64_t>(), 0) << "want some tokens with two experts";
  auto expected = q->forward_base(x).reshape({-1, 32});
  for (const std::string e : {"law", "finance"}) {
    const int64_t k = scar.expert_index(e);
    auto delta = scar.weight_deltas(e).front().second;  // [out, in]
    expected = expected + r.gates.select(1, k).unsqueeze(1) * torch::matmul(x.reshape({-1, 32}), delta.t());
  }
  EXPECT_LT(max_abs_diff(y.reshape({-1, 32}), expected), 1e-5);
}

TEST(Scar, DecodingWithTheCacheEqualsTheFullForwardAlsoWithTokenRouting) {
  torch::manual_seed(4);
  auto c = config3();
  Transformer m(c);
  GemConfig g = scar_and_dtr();
  g.dtr_blocks = {1};
  GemModules gem(m, g);
  test::randomise_routing(gem);
  m->eval();
  torch::NoGradGuard no_grad;
  const int64_t T = 12;
  auto ids = torch::randint(50, {1, T});
  auto full = m->forward(ids).logits;
  const auto metrics = gem.metrics();
  EXPECT_GT(metrics.at("dtr/realised_capacity"), 0.0);
  EXPECT_LT(metrics.at("dtr/realised_capacity"), 1.0);
  EXPECT_GT(metrics.at("scar/experts_per_token"), 1.0);  // some tokens use two experts
  auto cache = m->make_cache();
  ForwardOptions fo;
  fo.cache = &cache;
  for (int64_t t = 0; t < T; ++t)
    EXPECT_LT(max_abs_diff(m->forward(ids.narrow(1, t, 1), fo).logits, full.narrow(1, t, 1)), 1e-4) << t;
}

TEST(Scar, RouterGradientMatchesFiniteDifferences) {
  // Float64 at the level of one linear: the gates are differentiable in the router's query and
  // keys (the chosen set does not change for a tiny step).
  torch::manual_seed(5);
  Transformer m(config3());
  m->to(torch::kDouble);
  ScarOptions o = two_experts();
  o.target_modules = {"v_proj"};
  o.blocks = {0};
  Scar scar(m, o);
  test::randomise_experts(scar, 1.0);
  Linear v = m->linear("model.layers.0.self_attn.v_proj");
  auto x = torch::randn({1, 10, 32}, torch::kDouble);
  auto probe = torch::randn({1, 10, v->out_features()}, torch::kDouble);
  // A fresh input tensor per call: a group's routing is reused only for the very same input.
  auto objective = [&] { return (v->forward(x.clone()) * probe).sum(); };
  auto params = scar.named_parameters();
  auto query = params.at("routers.0.query"), keys = params.at("routers.0.keys");
  objective().backward();
  const double eps = 1e-6;
  for (auto* p : {&query, &keys}) {
    auto grad = p->grad().clone();
    EXPECT_GT(grad.abs().max().item<double>(), 0.0);
    for (int64_t i : {0, 5, 17}) {
      torch::NoGradGuard no_grad;
      auto flat = p->view({-1});
      const double x0 = flat[i].item<double>();
      flat[i].fill_(x0 + eps);
      const double up = objective().item<double>();
      flat[i].fill_(x0 - eps);
      const double down = objective().item<double>();
      flat[i].fill_(x0);
      const double numeric = (up - down) / (2 * eps), analytic = grad.view({-1})[i].item<double>();
      EXPECT_LT(std::abs(analytic - numeric), 1e-6 + 1e-5 * std::abs(numeric)) << i;
    }
  }
}

// Records the input a linear sees.
struct CaptureInput : LinearHook {
  torch::Tensor x;
  torch::Tensor transform_input(const torch::Tensor& in) override {
    x = in.detach();
    return in;
  }
};

TEST(Scar, LossesFollowTheirDefinitions) {
  torch::manual_seed(6);
  Transformer m(config3());
  ScarOptions o = two_experts();
  o.blocks = {0};
  Scar scar(m, o);
  // The two groups of block 0 route from the inputs of q_proj and gate_proj: capture them.
  auto attn_in = std::make_shared<CaptureInput>(), mlp_in = std::make_shared<CaptureInput>();
  m->linear("model.layers.0.self_attn.q_proj")->add_hook(attn_in);
  m->linear("model.layers.0.mlp.gate_proj")->add_hook(mlp_in);
  const int64_t B = 2, T = 5, E = 3;
  auto ids = torch::randint(50, {B, T});
  m->forward(ids);
  auto row_expert = torch::tensor({1, -1}, torch::kInt64);  // row 0 is law, row 1 unknown
  ScarLosses l = scar.losses(row_expert, torch::ones({B, T}, torch::kBool));

  auto params = scar.named_parameters();
  ExpertRouter router(32, E, o.router, m->config().rms_norm_eps, 0);
  torch::NoGradGuard no_grad;
  router->query.copy_(params.at("routers.0.query"));
  router->keys.copy_(params.at("routers.0.keys"));
  double balance = 0, z = 0, sup = 0;
  for (const auto& x : {attn_in->x, mlp_in->x}) {
    auto r = router->route(x.reshape({-1, 32}));
    auto f = torch::one_hot(r.probs.argmax(1), E).to(torch::kFloat).mean(0);
    balance += (double(E) * (f * r.probs.mean(0)).sum()).item<double>() / 2;
    z += torch::logsumexp(r.logits, 1).pow(2).mean().item<double>() / 2;
    sup += -std::log(r.probs.view({B, T, E}).mean(1)[0][1].item<double>()) / 2;
  }
  EXPECT_NEAR(l.balance.item<double>(), balance, 1e-5);
  EXPECT_NEAR(l.z.item<double>(), z, 1e-4);
  EXPECT_NEAR(l.supervision.item<double>(), sup, 1e-5);
  EXPECT_EQ(l.supervised_rows, 1);
  // Two rows of one domain and none of another: the balanced mean is the plain mean. Rows of
  // two domains: each domain's rows weigh half in all.
  ScarLosses both = scar.losses(torch::tensor({1, 0}, torch::kInt64), torch::ones({B, T}, torch::kBool));
  double sup2 = 0;
  for (const auto& x : {attn_in->x, mlp_in->x}) {
    auto mean_p = router->route(x.reshape({-1, 32})).probs.view({B, T, E}).mean(1);
    sup2 += -(0.5 * std::log(mean_p[0][1].item<double>()) + 0.5 * std::log(mean_p[1][0].item<double>())) / 2;
  }
  EXPECT_NEAR(both.supervision.item<double>(), sup2, 1e-5);
  // Without labels there is no supervision.
  EXPECT_EQ(scar.losses(torch::tensor({-1, -1}, torch::kInt64), {}).supervision.item<double>(), 0.0);
}

TEST(Scar, GeneralProbabilityIsPerToken) {
  torch::manual_seed(7);
  Transformer m(config3());
  Scar scar(m, two_experts());
  m->forward(torch::randint(50, {2, 6}));
  auto p = scar.general_probability(2, 6);
  ASSERT_TRUE(p.defined());
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_GT(p.min().item<double>(), 0.0);
  EXPECT_LT(p.max().item<double>(), 1.0);
  // Sequence-level statistics: 2 rows x 3 blocks x 2 groups; the share of rows whose mean
  // distribution peaks at general follows the decisions' probabilities.
  EXPECT_EQ(scar.stats().rows, 12);
  EXPECT_GE(scar.stats().row_share_first_expert(), 0.0);
  EXPECT_LE(scar.stats().row_share_first_expert(), 1.0);
  scar.set_forced_expert(0);
  scar.reset_stats();
  m->forward(torch::randint(50, {2, 6}));
  EXPECT_EQ(scar.stats().row_share_first_expert(), 1.0);
  EXPECT_EQ(scar.stats().load(0), 1.0);
}

TEST(GemModules, CheckpointRoundTripRestoresTheRoutedModel) {
  torch::manual_seed(8);
  auto c = config3();
  Transformer m(c);
  const GemConfig g = scar_and_dtr();
  auto ids = torch::randint(50, {1, 10});
  const std::string dir = test::temp_folder("scar", "roundtrip");
  torch::Tensor expected;
  {
    GemModules gem(m, g);
    test::randomise_experts(*gem.scar());
    m->eval();
    torch::NoGradGuard no_grad;
    expected = m->forward(ids).logits;
    gem.save(dir);
  }
  // The modules are gone: the model is the base again.
  torch::NoGradGuard no_grad;
  EXPECT_GT(max_abs_diff(m->forward(ids).logits, expected), 1e-4);
  auto gem = load_gem_modules(m, dir);
  ASSERT_TRUE(gem);
  EXPECT_EQ(gem->config().scar_options.experts, g.scar_options.experts);
  EXPECT_LT(max_abs_diff(m->forward(ids).logits, expected), 1e-6);
  EXPECT_FALSE(load_gem_modules(m, test::temp_folder("scar", "plain")));
  // An inference bias towards the general expert is saved with the config and routes after loading.
  gem->set_scar_general_bias(3.0);
  const torch::Tensor biased = m->forward(ids).logits;
  EXPECT_GT(max_abs_diff(biased, expected), 1e-4);
  gem->save_config(dir);
  gem.reset();
  gem = load_gem_modules(m, dir);
  EXPECT_EQ(gem->config().scar_options.router.general_bias, 3.0);
  EXPECT_LT(max_abs_diff(m->forward(ids).logits, biased), 1e-6);
}

TEST(GemModules, MalformedConfigsAndTensorsAreNamed) {
  const std::string dir = test::temp_folder("scar", "bad");
  Transformer m(config3());
  std::ofstream(dir + "/gem.json") << R"({"format": "gemkit-gem", "version": 2})";
  test::expect_error([&] { load_gem_modules(m, dir); }, {"gem.json", "version", "not supported"});
  std::ofstream(dir + "/gem.json") << R"({"format": "gemkit-gem", "version": 1, "scar": {"experts": ["law"], "rank": "x"}})";
  test::expect_error([&] { load_gem_modules(m, dir); }, {"gem.json", "rank", "wrong type"});
  std::ofstream(dir + "/gem.json") << R"({"format": "gemkit-gem", "version": 1, "scar": {"experts": ["law"]}})";
  test::expect_error([&] { load_gem_modules(m, dir); }, {"extra.safetensors"});
  SafetensorsWriter writer;
  add_tensor(writer, "scar.routers.0.query", torch::zeros({3, 3}));
  writer.write(dir + "/extra.safetensors");
  test::expect_error([&] { load_gem_modules(m, dir); }, {"extra.safetensors", "missing SCAR tensor"});
  ScarOptions bad = two_experts();
  bad.experts = {"general"};
  test::expect_error([&] { Scar s(m, bad); }, {"ScarOptions.experts", "general"});
  bad = two_experts();
  bad.general_expert = false;
  bad.router.general_bias = 1.0;
  test::expect_error([&] { Scar s(m, bad); }, {"ScarOptions.router.general_bias", "general expert"});
  bad = two_experts();
  bad.target_modules = {"lm_head"};
  test::expect_error([&] { Scar s(m, bad); }, {"ScarOptions.target_modules", "lm_head"});
}
