// The transformer's contract (HF names, validation, hooks, block wrapping), the KV cache
// against the full forward, and generation. Tiny random models: every test runs in
// milliseconds. Numerical agreement with an independent reference is test_parity.
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include <torch/torch.h>

#include <set>
#include <string>

#include "core/error.h"
#include "model/generate.h"
#include "model/loss.h"
#include "model/transformer.h"

using namespace gemkit;

static ModelConfig decoder_config(bool bias = true, bool tied = false, int64_t kv_heads = 2) {
  ModelConfig c = test::tiny_decoder_config();
  c.num_key_value_heads = kv_heads;
  c.attention_bias = bias;
  c.tie_word_embeddings = tied;
  c.rope_theta = 10000.0;
  return c;
}

static ModelConfig encoder_config(Head head) {
  ModelConfig c;
  c.family = Family::Encoder;
  c.head = head;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.max_position_embeddings = 32;
  c.hidden_act = "gelu";
  c.num_labels = 3;
  return c;
}

static std::set<std::string> parameter_names(const torch::nn::Module& m) {
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) names.insert(p.key());
  return names;
}

static double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Expects a gemkit::Error whose message mentions `field`.
template <typename F>
static void expect_error_naming(F&& f, const std::string& field) {
  try {
    f();
    ADD_FAILURE() << "expected an error naming " << field;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

// ----- configuration and names ------------------------------------------------------------

TEST(Transformer, ValidatesConfigNamingTheField) {
  auto bad = decoder_config();
  bad.hidden_size = 0;
  expect_error_naming([&] { Transformer m(bad); }, "hidden_size");
  bad = decoder_config();
  bad.num_attention_heads = 5;  // 32 % 5 != 0
  expect_error_naming([&] { Transformer m(bad); }, "num_attention_heads");
  bad = decoder_config();
  bad.num_key_value_heads = 3;  // 4 % 3 != 0
  expect_error_naming([&] { Transformer m(bad); }, "num_key_value_heads");
  bad = decoder_config();
  bad.vocab_size = -1;
  expect_error_naming([&] { Transformer m(bad); }, "vocab_size");
  bad = decoder_config();
  bad.head = Head::MaskedLM;
  expect_error_naming([&] { Transformer m(bad); }, "head");
  bad = decoder_config();
  bad.hidden_act = "swishy";
  expect_error_naming([&] { Transformer m(bad); }, "hidden_act");
  auto enc = encoder_config(Head::SequenceClassification);
  enc.num_labels = 0;
  expect_error_naming([&] { Transformer m(enc); }, "num_labels");
  enc = encoder_config(Head::MaskedLM);
  enc.max_position_embeddings = 0;
  expect_error_naming([&] { Transformer m(enc); }, "max_position_embeddings");
}

TEST(Transformer, DecoderParameterNamesAreHuggingFaceNames) {
  torch::manual_seed(0);
  Transformer untied(decoder_config(/*bias=*/true, /*tied=*/false));
  std::set<std::string> expected = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* n : {"input_layernorm.weight", "post_attention_layernorm.weight",
                          "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                          "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                          "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      expected.insert(p + n);
  }
  EXPECT_EQ(parameter_names(*untied), expected);
  EXPECT_EQ(untied->named_parameters()["model.layers.0.self_attn.k_proj.weight"].sizes(),
            torch::IntArrayRef({16, 32}));  // 2 kv heads x head_dim 8
  EXPECT_TRUE(untied->named_buffers().is_empty());

  Transformer tied(decoder_config(/*bias=*/false, /*tied=*/true));
  auto names = parameter_names(*tied);
  EXPECT_EQ(names.count("lm_head.weight"), 0u);
  EXPECT_EQ(names.count("model.layers.0.self_attn.q_proj.bias"), 0u);
  EXPECT_EQ(names.size(), 2u + 2u * 9u);
  EXPECT_EQ(tied->ignorable_checkpoint_tensors().count("lm_head.weight"), 1u);
  EXPECT_EQ(untied->ignorable_checkpoint_tensors().count("lm_head.weight"), 0u);
}

TEST(Transformer, EncoderParameterNamesAreHuggingFaceNames) {
  Transformer mlm(encoder_config(Head::MaskedLM));
  auto names = parameter_names(*mlm);
  for (const char* n :
       {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias", "bert.encoder.layer.1.attention.self.query.weight",
        "bert.encoder.layer.1.attention.self.key.bias", "bert.encoder.layer.1.attention.self.value.weight",
        "bert.encoder.layer.1.attention.output.dense.weight",
        "bert.encoder.layer.1.attention.output.LayerNorm.bias",
        "bert.encoder.layer.1.intermediate.dense.weight", "bert.encoder.layer.1.output.dense.bias",
        "bert.encoder.layer.1.output.LayerNorm.weight", "cls.predictions.bias",
        "cls.predictions.transform.dense.weight", "cls.predictions.transform.LayerNorm.weight"})
    EXPECT_EQ(names.count(n), 1u) << n;
  EXPECT_EQ(names.size(), 5u + 2u * 16u + 5u);
  EXPECT_EQ(mlm->ignorable_checkpoint_tensors().count("cls.predictions.decoder.weight"), 1u);

  auto cfg = encoder_config(Head::SequenceClassification);
  cfg.bert_prefix = false;
  Transformer cls(cfg);
  names = parameter_names(*cls);
  EXPECT_EQ(names.count("embeddings.word_embeddings.weight"), 1u);
  EXPECT_EQ(names.count("pooler.dense.weight"), 1u);
  EXPECT_EQ(names.count("classifier.bias"), 1u);
  EXPECT_EQ(names.count("cls.predictions.bias"), 0u);
  EXPECT_EQ(cls->named_parameters()["classifier.weight"].sizes(), torch::IntArrayRef({3, 32}));
}

// ----- hooks ------------------------------------------------------------------------------

TEST(Transformer, EveryLinearIsReachableByItsModulePath) {
  Transformer m(decoder_config());
  const auto& paths = m->linear_paths();
  EXPECT_EQ(paths.size(), 2u * 7u + 1u);
  EXPECT_EQ(paths.front(), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(paths.back(), "lm_head");
  auto q = m->linear("model.layers.1.self_attn.q_proj");
  EXPECT_TRUE(q->weight.is_same(m->named_parameters()["model.layers.1.self_attn.q_proj.weight"]));
  expect_error_naming([&] { m->linear("model.layers.9.self_attn.q_proj"); }, "model.layers.9");

  Transformer bert(encoder_config(Head::SequenceClassification));
  EXPECT_TRUE(bert->has_linear("bert.encoder.layer.0.attention.self.query"));
  EXPECT_TRUE(bert->has_linear("bert.encoder.layer.0.attention.output.dense"));
  EXPECT_TRUE(bert->has_linear("bert.pooler.dense"));
  EXPECT_TRUE(bert->has_linear("classifier"));
}

// A LoRA-shaped hook: y + x A^T B^T with its own parameters, owned outside the model.
struct AddLowRank : LinearHook {
  torch::Tensor A, B;
  AddLowRank(int64_t in, int64_t out) : A(torch::randn({2, in})), B(torch::randn({out, 2})) {}
  torch::Tensor adjust_output(const torch::Tensor& x, const torch::Tensor& y) override {
    return y + torch::matmul(torch::matmul(x, A.t()), B.t());
  }
};
struct ScaleWeight : LinearHook {
  torch::Tensor transform_weight(const torch::Tensor& w) override { return w * 2; }
};

TEST(Transformer, LinearHooksChangeTheComputationButNotTheParameters) {
  torch::manual_seed(1);
  Transformer m(decoder_config());
  auto ids = torch::randint(50, {2, 5});
  auto before = m->forward(ids).logits;
  const auto names = parameter_names(*m);

  auto q = m->linear("model.layers.0.self_attn.q_proj");
  auto lora = std::make_shared<AddLowRank>(32, 32);
  q->add_hook(lora);
  auto x = torch::randn({3, 32});
  EXPECT_LT(max_abs_diff(q(x), q->forward_base(x) + x.matmul(lora->A.t()).matmul(lora->B.t())), 1e-5);
  auto hooked = m->forward(ids).logits;
  EXPECT_GT(max_abs_diff(hooked, before), 1e-3);
  EXPECT_EQ(parameter_names(*m), names);

  m->set_linear_hooks_enabled(false);  // the teacher pass
  EXPECT_EQ(max_abs_diff(m->forward(ids).logits, before), 0.0);
  m->set_linear_hooks_enabled(true);
  q->remove_hook(lora);
  EXPECT_EQ(max_abs_diff(m->forward(ids).logits, before), 0.0);

  // A weight transform is the same as changing the weight.
  auto down = m->linear("model.layers.1.mlp.down_proj");
  down->add_hook(std::make_shared<ScaleWeight>());
  auto transformed = m->forward(ids).logits;
  down->clear_hooks();
  {
    torch::NoGradGuard g;
    down->weight.mul_(2);
  }
  EXPECT_LT(max_abs_diff(m->forward(ids).logits, transformed), 1e-6);
}

// A wrapper in the shape a token router takes: it holds the original block and decides how
// much of its update each token gets (here a fixed per-token gate).
struct GatedBlock : Block {
  BlockPtr inner;
  torch::Tensor gate;  // [T]
  GatedBlock(BlockPtr b, torch::Tensor g) : inner(std::move(b)), gate(std::move(g)) {
    register_parameter("gate", gate);  // the wrapper's own parameter, under its own module
  }
  torch::Tensor forward(const torch::Tensor& h, const BlockContext& ctx) override {
    return h + gate.view({1, -1, 1}) * (inner->forward(h, ctx) - h);
  }
};

TEST(Transformer, BlocksCanBeWrappedWithoutChangingParameterNames) {
  torch::manual_seed(2);
  Transformer m(decoder_config());
  auto ids = torch::randint(50, {1, 6});
  auto before = m->forward(ids).logits;
  const auto names = parameter_names(*m);

  auto wrapper = std::make_shared<GatedBlock>(m->base_block(1), torch::ones({6}));
  m->set_block(1, wrapper);
  EXPECT_EQ(m->block(1), wrapper);
  EXPECT_EQ(parameter_names(*m), names);
  EXPECT_LT(max_abs_diff(m->forward(ids).logits, before), 1e-6);  // gate 1: the block itself

  wrapper->gate.data().zero_();  // gate 0: the block is skipped
  auto skipped = m->forward(ids).logits;
  m->set_block(1, std::make_shared<GatedBlock>(m->base_block(1), torch::ones({6})));
  EXPECT_GT(max_abs_diff(skipped, before), 1e-4);
  m->set_block(1, nullptr);
  EXPECT_EQ(m->block(1), m->base_block(1));
  EXPECT_EQ(max_abs_diff(m->forward(ids).logits, before), 0.0);
  expect_error_naming([&] { m->set_block(2, wrapper); }, "out of range");
}

// ----- padding, heads, losses -------------------------------------------------------------

TEST(Transformer, EncoderPaddingDoesNotChangeRealTokens) {
  torch::manual_seed(3);
  Transformer m(encoder_config(Head::MaskedLM));
  auto ids = torch::randint(40, {1, 5});
  auto padded = torch::cat({ids, torch::zeros({1, 3}, torch::kInt64)}, 1);
  ForwardOptions o;
  o.attention_mask = torch::cat({torch::ones({1, 5}), torch::zeros({1, 3})}, 1).to(torch::kInt64);
  auto full = m->forward(ids).logits;
  auto with_pad = m->forward(padded, o).logits.narrow(1, 0, 5);
  EXPECT_LT(max_abs_diff(full, with_pad), 1e-5);
  EXPECT_FALSE(torch::isnan(m->forward(padded, o).logits).any().item<bool>());
}

TEST(Transformer, DecoderLeftPaddingMatchesTheUnpaddedSequence) {
  torch::manual_seed(4);
  Transformer m(decoder_config());
  auto ids = torch::randint(1, 50, {1, 4});
  auto padded = torch::cat({torch::zeros({1, 2}, torch::kInt64), ids}, 1);
  ForwardOptions o;
  o.attention_mask = torch::tensor({{0, 0, 1, 1, 1, 1}});
  auto all = m->forward(padded, o).logits;
  EXPECT_FALSE(torch::isnan(all).any().item<bool>());  // padding queries see no key: finite, unused
  EXPECT_LT(max_abs_diff(all.narrow(1, 2, 4), m->forward(ids).logits), 1e-5);
}

TEST(Transformer, DecoderClassificationPoolsTheLastRealToken) {
  torch::manual_seed(5);
  auto cfg = decoder_config();
  cfg.head = Head::SequenceClassification;
  cfg.num_labels = 3;
  cfg.pad_token_id = 0;
  Transformer m(cfg);
  EXPECT_EQ(parameter_names(*m).count("score.weight"), 1u);
  auto ids = torch::randint(1, 50, {1, 4});
  auto right_padded = torch::cat({ids, torch::zeros({1, 3}, torch::kInt64)}, 1);
  auto logits = m->forward(ids).logits;
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({1, 3}));
  EXPECT_LT(max_abs_diff(m->forward(right_padded).logits, logits), 1e-5);  // pad id rule
  auto loss = m->loss(m->forward(ids), torch::tensor({2}));
  EXPECT_NEAR(loss.item<double>(), -torch::log_softmax(logits, -1)[0][2].item<double>(), 1e-6);
}

TEST(Loss, CausalLmShiftsAndIgnoresMinus100) {
  torch::manual_seed(6);
  auto logits = torch::randn({1, 4, 7});
  auto labels = torch::tensor({{3, 1, -100, 5}});
  auto lp = torch::log_softmax(logits, -1);
  // Position 0 predicts labels[1]=1, position 1 predicts -100 (ignored), position 2 predicts 5.
  double expected = -(lp[0][0][1].item<double>() + lp[0][2][5].item<double>()) / 2;
  EXPECT_NEAR(causal_lm_loss(logits, labels).item<double>(), expected, 1e-6);
  double mlm = -(lp[0][0][3].item<double>() + lp[0][1][1].item<double>() + lp[0][3][5].item<double>()) / 3;
  EXPECT_NEAR(masked_lm_loss(logits, labels).item<double>(), mlm, 1e-6);
}

// ----- KV cache ---------------------------------------------------------------------------

TEST(KVCache, IncrementalDecodingEqualsFullForward) {
  torch::manual_seed(7);
  for (bool bias : {false, true}) {
    Transformer m(decoder_config(bias, /*tied=*/!bias, /*kv_heads=*/bias ? 2 : 1));
    torch::NoGradGuard no_grad;
    const int64_t B = 2, T = 9;
    auto ids = torch::randint(50, {B, T});
    auto full = m->forward(ids).logits;

    // Token by token.
    KVCache cache = m->make_cache();
    ForwardOptions o;
    o.cache = &cache;
    double worst = 0;
    for (int64_t t = 0; t < T; ++t) {
      auto step = m->forward(ids.narrow(1, t, 1), o).logits;
      worst = std::max(worst, max_abs_diff(step.squeeze(1), full.select(1, t)));
    }
    EXPECT_EQ(cache.length(), T);
    EXPECT_LT(worst, 1e-5) << "token by token, bias " << bias;

    // A prompt chunk, then chunks of 2 and 1.
    cache.clear();
    auto a = m->forward(ids.narrow(1, 0, 4), o).logits;
    auto b = m->forward(ids.narrow(1, 4, 2), o).logits;
    auto c = m->forward(ids.narrow(1, 6, 3), o).logits;
    EXPECT_LT(max_abs_diff(torch::cat({a, b, c}, 1), full), 1e-5);
    std::printf("[kv cache] bias=%d max |incremental - full| = %.3g\n", bias, worst);
  }
}

// Under autograd the cache concatenates instead of writing into a buffer (see kv_cache.h);
// results and gradients must still match the full forward. Also runs the model in float64.
TEST(KVCache, WorksUnderAutogradAndInDouble) {
  torch::manual_seed(12);
  Transformer m(decoder_config());
  m->to(torch::kFloat64);
  auto ids = torch::randint(50, {2, 7});
  auto full = m->forward(ids).logits;
  EXPECT_EQ(full.scalar_type(), torch::kFloat64);
  KVCache cache = m->make_cache();
  ForwardOptions o;
  o.cache = &cache;
  auto a = m->forward(ids.narrow(1, 0, 3), o).logits;
  auto b = m->forward(ids.narrow(1, 3, 1), o).logits;
  auto c = m->forward(ids.narrow(1, 4, 3), o).logits;
  auto inc = torch::cat({a, b, c}, 1);
  EXPECT_LT(max_abs_diff(inc, full), 1e-5);
  auto w = m->linear("model.layers.0.self_attn.k_proj")->weight;
  auto g_full = torch::autograd::grad({full.sum()}, {w})[0];
  auto g_inc = torch::autograd::grad({inc.sum()}, {w})[0];
  EXPECT_LT(max_abs_diff(g_full, g_inc), 1e-5);
}

TEST(KVCache, LeftPaddedBatchDecodesLikeEachSequenceAlone) {
  torch::manual_seed(8);
  Transformer m(decoder_config());
  torch::NoGradGuard no_grad;
  auto longer = torch::randint(1, 50, {1, 6});
  auto shorter = torch::randint(1, 50, {1, 3});
  auto batch = torch::cat({longer, torch::cat({torch::zeros({1, 3}, torch::kInt64), shorter}, 1)}, 0);
  auto next = torch::randint(1, 50, {2, 1});

  KVCache cache = m->make_cache();
  ForwardOptions o;
  o.cache = &cache;
  o.attention_mask = torch::tensor({{1, 1, 1, 1, 1, 1}, {0, 0, 0, 1, 1, 1}});
  m->forward(batch, o);
  o.attention_mask = torch::Tensor();
  auto step = m->forward(next, o).logits;  // positions continue per sequence: 6 and 3

  auto alone = m->forward(torch::cat({shorter, next.narrow(0, 1, 1)}, 1)).logits.select(1, 3);
  EXPECT_LT(max_abs_diff(step[1][0], alone[0]), 1e-5);
  auto alone0 = m->forward(torch::cat({longer, next.narrow(0, 0, 1)}, 1)).logits.select(1, 6);
  EXPECT_LT(max_abs_diff(step[0][0], alone0[0]), 1e-5);
}

// ----- generation -------------------------------------------------------------------------

TEST(Generate, GreedyIsTheArgmaxOfTheFullForwardAtEveryStep) {
  torch::manual_seed(9);
  Transformer m(decoder_config());
  std::vector<int64_t> prompt = {5, 17, 3};
  GenerationConfig g;
  g.max_new_tokens = 12;
  int64_t streamed = 0;
  auto out = generate(m, prompt, g, [&](int64_t seq, int64_t) {
    EXPECT_EQ(seq, 0);
    ++streamed;
    return true;
  });
  ASSERT_EQ(out.size(), 12u);
  EXPECT_EQ(streamed, 12);
  torch::NoGradGuard no_grad;
  std::vector<int64_t> seq = prompt;
  for (int64_t token : out) {
    auto ids = torch::tensor(seq).unsqueeze(0);
    EXPECT_EQ(m->forward(ids).logits[0][-1].argmax().item<int64_t>(), token);
    seq.push_back(token);
  }
}

TEST(Generate, SamplingIsDeterministicGivenTheSeed) {
  torch::manual_seed(10);
  Transformer m(decoder_config());
  GenerationConfig g;
  g.max_new_tokens = 16;
  g.do_sample = true;
  g.temperature = 1.5;
  g.seed = 42;
  auto a = generate(m, std::vector<int64_t>{1, 2, 3}, g);
  auto b = generate(m, std::vector<int64_t>{1, 2, 3}, g);
  EXPECT_EQ(a, b);
  g.seed = 43;
  auto c = generate(m, std::vector<int64_t>{1, 2, 3}, g);
  EXPECT_NE(a, c);  // 16 draws at temperature 1.5 over 50 tokens: a collision is ~impossible

  GenerationConfig greedy;
  greedy.max_new_tokens = 16;
  auto expected = generate(m, std::vector<int64_t>{1, 2, 3}, greedy);
  g.top_k = 1;
  EXPECT_EQ(generate(m, std::vector<int64_t>{1, 2, 3}, g), expected);
  g.top_k = 0;
  g.top_p = 1e-6;
  EXPECT_EQ(generate(m, std::vector<int64_t>{1, 2, 3}, g), expected);
}

TEST(Generate, TopKAndTopPKeepOnlyTheirCandidates) {
  std::vector<float> logits = {0.f, 3.f, 1.f, 2.f, -1.f};  // order: 1, 3, 2, 0, 4
  GenerationConfig g;
  g.do_sample = true;
  g.top_k = 2;
  std::mt19937_64 rng(0);
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(select_token(logits.data(), 5, g, rng));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3}));
  // p = softmax: 0.64, 0.24, 0.09, ...; top_p 0.8 keeps {1, 3}, top_p 0.9 adds 2.
  g.top_k = 0;
  g.top_p = 0.8;
  seen.clear();
  for (int i = 0; i < 200; ++i) seen.insert(select_token(logits.data(), 5, g, rng));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3}));
  g.top_p = 0.9;
  seen.clear();
  for (int i = 0; i < 400; ++i) seen.insert(select_token(logits.data(), 5, g, rng));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 2, 3}));
}

TEST(Generate, StopsAtEosAndBatchesLikeSinglePrompts) {
  torch::manual_seed(11);
  auto cfg = decoder_config();
  Transformer m(cfg);
  GenerationConfig g;
  g.max_new_tokens = 10;
  std::vector<int64_t> p0 = {4, 9, 30, 2}, p1 = {7};
  auto a0 = generate(m, p0, g), a1 = generate(m, p1, g);
  auto batch = generate(m, std::vector<std::vector<int64_t>>{p0, p1}, g);
  EXPECT_EQ(batch[0], a0);
  EXPECT_EQ(batch[1], a1);

  // Make the third greedy token the stop token: generation ends right after it.
  g.stop_token_ids = {a0[2]};
  auto stopped = generate(m, p0, g);
  auto first = std::find(a0.begin(), a0.end(), a0[2]);
  EXPECT_EQ(stopped, std::vector<int64_t>(a0.begin(), first + 1));

  // The callback can stop a sequence.
  g.stop_token_ids.clear();
  auto cut = generate(m, p0, g, [](int64_t, int64_t) { return false; });
  EXPECT_EQ(cut.size(), 1u);
}
