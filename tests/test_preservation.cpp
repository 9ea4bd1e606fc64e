// Knowledge preservation (preservation/): the distillation loss against Python torch and finite
// differences; the teacher as the base network (LoRA and a block wrapper switched off, state
// restored, also on a throw) or a frozen copy; the true Fisher (sampled targets, seeded,
// converging to the exact expectation) and its cache; EWC, L2-SP and the adapter-delta penalty
// (zero before weights move, non-zero with a gradient after: a well-known library shipped an
// EWC that was always zero); online EWC; the forgetting-budget controller and its state.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/file_io.h"
#include "model/blocks.h"
#include "model/lora.h"
#include "preservation/distillation.h"
#include "preservation/fisher.h"
#include "preservation/forgetting_budget.h"
#include "preservation/teacher.h"
#include "preservation/tensor_file.h"
#include "preservation/weight_penalty.h"
#include "tests/test_util.h"

#ifndef GEMKIT_TORCH_PYTHON
#define GEMKIT_TORCH_PYTHON "/usr/bin/python3"
#endif

using namespace gemkit;
using test::expect_error;
using nlohmann::json;

namespace {

Transformer make_model(uint64_t seed) {
  torch::manual_seed(seed);
  Transformer m(test::tiny_decoder_config());
  m->eval();
  return m;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.detach() - b.detach()).abs().max().item<double>();
}

// A block wrapper, as a token router is one: the base block's residual update, halved.
class HalfUpdateBlock : public Block {
 public:
  explicit HalfUpdateBlock(BlockPtr base) : base_(std::move(base)) {}
  torch::Tensor forward(const torch::Tensor& h, const BlockContext& ctx) override {
    return h + 0.5 * (base_->forward(h, ctx) - h);
  }

 private:
  BlockPtr base_;
};

// Rows of `seq_len` tokens made of documents of the given lengths (0 = padding to the end), packed
// as the loader packs them: -100 at each document's first token and on padding.
TokenBatch packed_batch(const std::vector<std::vector<int>>& rows, int64_t seq_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TokenBatch b;
  b.rows = int64_t(rows.size());
  b.seq_len = seq_len;
  for (const auto& docs : rows) {
    int64_t used = 0;
    for (size_t d = 0; d < docs.size(); ++d)
      for (int i = 0; i < docs[d]; ++i, ++used) {
        const int32_t id = int32_t(rng() % 50);
        b.input_ids.push_back(id);
        b.labels.push_back(i == 0 ? -100 : id);
        b.attention_mask.push_back(1);
        b.segment_ids.push_back(int32_t(d));
      }
    for (; used < seq_len; ++used) {
      b.input_ids.push_back(0);
      b.labels.push_back(-100);
      b.attention_mask.push_back(0);
      b.segment_ids.push_back(-1);
    }
  }
  return b;
}

std::vector<TokenBatch> general_batches() {
  return {packed_batch({{8}, {5, 3}, {6}}, 8, 1), packed_batch({{4, 4}, {7}, {2, 3, 3}}, 8, 2)};
}

std::map<std::string, torch::Tensor> random_importance(const Transformer& m, uint64_t seed) {
  torch::manual_seed(seed);
  std::map<std::string, torch::Tensor> f;
  for (const auto& p : m->named_parameters()) f[p.key()] = torch::rand(p.value().sizes()) + 0.1;
  return f;
}

double total(const std::map<std::string, torch::Tensor>& f) {
  double s = 0;
  for (const auto& item : f) s += item.second.sum().item<double>();
  return s;
}

// One SGD step of the task loss on a batch: moves every trainable parameter a little.
void task_step(Transformer& m, const std::vector<torch::Tensor>& params, uint64_t seed) {
  torch::manual_seed(seed);
  const auto ids = torch::randint(50, {2, 8});
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.5));
  sgd.zero_grad();
  m->loss(m->forward(ids), ids).backward();
  sgd.step();
  sgd.zero_grad();
}

json tensor_json(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kFloat64).contiguous();
  return {{"shape", c.sizes().vec()}, {"data", std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel())}};
}

}  // namespace

// ---------------------------------------------------------------- distillation

TEST(Distillation, ZeroWhenStudentIsTheTeacherPositiveOtherwise) {
  torch::manual_seed(1);
  const auto s = torch::randn({2, 4, 7});
  const auto w = torch::ones({2, 4});
  EXPECT_NEAR(distillation_loss(s, s.clone(), w, 2.0).item<double>(), 0.0, 1e-7);
  EXPECT_GT(distillation_loss(s, torch::randn({2, 4, 7}), w, 2.0).item<double>(), 1e-3);
}

// Python torch 1.13 computes the same formula with F.kl_div(log_target=True); value and gradient agree.
TEST(Distillation, MatchesPythonTorch) {
  const std::string dir = test::temp_folder("preservation", "kd_python");
  torch::manual_seed(2);
  const auto student = (torch::randn({2, 5, 11}) * 3).requires_grad_(true);
  const auto teacher = torch::randn({2, 5, 11}) * 3;
  const auto weights = torch::tensor({{1.0, 0.0, 0.5, 1.0, 0.25}, {0.0, 1.0, 1.0, 0.8, 0.0}});
  const double temperature = 1.7;
  const auto loss = distillation_loss(student, teacher, weights, temperature);
  loss.backward();

  write_text_file_atomic(dir + "/in.json", json{{"student", tensor_json(student)},
                                                {"teacher", tensor_json(teacher)},
                                                {"weights", tensor_json(weights)},
                                                {"temperature", temperature}}
                                               .dump());
  write_text_file_atomic(dir + "/kd.py", R"(import json, sys, torch
import torch.nn.functional as F
d = json.load(open(sys.argv[1]))
t = lambda k: torch.tensor(d[k]["data"], dtype=torch.float32).reshape(d[k]["shape"])
s = t("student").requires_grad_(True)
T = d["temperature"]
kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t("teacher") / T, -1), reduction="none", log_target=True).sum(-1)
w = t("weights")
loss = (w * kl).sum() * T * T / w.sum()
loss.backward()
json.dump({"loss": loss.item(), "grad": s.grad.reshape(-1).tolist()}, open(sys.argv[2], "w"))
)");
  const std::string cmd = std::string("'") + GEMKIT_TORCH_PYTHON + "' " + dir + "/kd.py " + dir + "/in.json " + dir +
                          "/out.json > " + dir + "/py.log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_text_file(dir + "/py.log");
  const json out = json::parse(read_text_file(dir + "/out.json"));
  EXPECT_NEAR(loss.item<double>(), out["loss"].get<double>(), 1e-6 * std::abs(out["loss"].get<double>()));
  const auto grad = torch::tensor(out["grad"].get<std::vector<double>>(), torch::kFloat64);
  EXPECT_LT(max_abs_diff(student.grad().reshape(-1).to(torch::kFloat64), grad), 1e-7);
  EXPECT_GT(grad.abs().max().item<double>(), 1e-3);
}

TEST(Distillation, GradientMatchesFiniteDifferences) {
  torch::manual_seed(3);
  const auto student = torch::randn({2, 3, 5}, torch::kFloat64).requires_grad_(true);
  const auto teacher = torch::randn({2, 3, 5}, torch::kFloat64);
  const auto weights = torch::tensor({{1.0, 0.3, 0.0}, {2.0, 0.0, 0.7}}, torch::kFloat64);
  distillation_loss(student, teacher, weights, 2.5).backward();
  const double eps = 1e-6;
  auto flat = student.detach().clone().reshape(-1);
  for (int64_t i = 0; i < flat.numel(); ++i) {
    auto plus = flat.clone(), minus = flat.clone();
    plus[i] += eps;
    minus[i] -= eps;
    const double numeric = (distillation_loss(plus.reshape({2, 3, 5}), teacher, weights, 2.5).item<double>() -
                            distillation_loss(minus.reshape({2, 3, 5}), teacher, weights, 2.5).item<double>()) /
                           (2 * eps);
    EXPECT_NEAR(student.grad().reshape(-1)[i].item<double>(), numeric, 1e-8) << "element " << i;
  }
}

// Weight-0 positions do not matter, whatever they hold; weights are relative; all-zero is 0 with
// a graph; the teacher gets no gradient.
TEST(Distillation, WeightsSelectPositions) {
  torch::manual_seed(4);
  const auto s = torch::randn({2, 3, 6});
  const auto t = torch::randn({2, 3, 6});
  const auto w = torch::tensor({{1.0, 0.0, 1.0}, {0.0, 0.5, 0.0}});
  const double base = distillation_loss(s, t, w, 1.0).item<double>();
  // Only positions (0,0), (0,2), (1,1) count, (1,1) at half weight.
  const auto kept_s = torch::stack({s[0][0], s[0][2], s[1][1]}).unsqueeze(0);
  const auto kept_t = torch::stack({t[0][0], t[0][2], t[1][1]}).unsqueeze(0);
  EXPECT_NEAR(distillation_loss(kept_s, kept_t, torch::tensor({{1.0, 1.0, 0.5}}), 1.0).item<double>(), base, 1e-6);
  EXPECT_NEAR(distillation_loss(s, t, w * 7.0, 1.0).item<double>(), base, 1e-6);

  auto s2 = s.clone(), t2 = t.clone();
  s2[0][1].fill_(1e6);
  t2[1][0].fill_(std::nan(""));
  t2[1][2].fill_(INFINITY);
  auto student = s2.requires_grad_(true);
  auto teacher = t2.requires_grad_(true);
  const auto loss = distillation_loss(student, teacher, w, 1.0);
  EXPECT_NEAR(loss.item<double>(), base, 1e-6);
  loss.backward();
  EXPECT_EQ(student.grad()[0][1].abs().max().item<double>(), 0.0);
  EXPECT_EQ(student.grad()[1][0].abs().max().item<double>(), 0.0);
  EXPECT_GT(student.grad()[0][0].abs().max().item<double>(), 0.0);
  EXPECT_FALSE(teacher.grad().defined());

  auto s3 = s.clone().requires_grad_(true);
  const auto zero = distillation_loss(s3, t, torch::zeros({2, 3}), 1.0);
  EXPECT_EQ(zero.item<double>(), 0.0);
  zero.backward();
  ASSERT_TRUE(s3.grad().defined());
  EXPECT_EQ(s3.grad().abs().max().item<double>(), 0.0);

  expect_error([&] { distillation_loss(s, t.narrow(2, 0, 5), w, 1.0); }, {"teacher logits", "[2, 3, 5]"});
  expect_error([&] { distillation_loss(s, t, w.narrow(1, 0, 2), 1.0); }, {"weights", "[2, 2]"});
  expect_error([&] { distillation_loss(s, t, w, 0.0); }, {"temperature"});
}

// ---------------------------------------------------------------- teacher

TEST(Teacher, SameNetworkIsTheBaseWithLoraAndAWrapperInstalledAndRestoresEverything) {
  Transformer m = make_model(10);
  torch::manual_seed(11);
  const auto ids = torch::randint(50, {2, 7});
  const auto base = m->forward(ids).logits;

  LoraOptions o;
  o.rank = 4;
  o.target_modules = {"all-linear"};
  auto adapters = LoraAdapters::attach(m, o);
  Teacher teacher = Teacher::same_network(m);
  // Freshly attached (B = 0): the student is the teacher and distillation is zero.
  const auto fresh = m->forward(ids).logits;
  EXPECT_NEAR(distillation_loss(fresh, teacher.forward(ids).logits, torch::ones({2, 7}), 2.0).item<double>(), 0.0, 1e-7);

  {
    torch::NoGradGuard no_grad;  // B != 0: the adapters change every layer's output
    for (const auto& path : adapters.module_paths()) adapters.layer(path).B.normal_(0, 0.1);
  }
  auto wrapper = std::make_shared<HalfUpdateBlock>(m->base_block(1));
  m->set_block(1, wrapper);
  // State that must come back exactly: one layer's hooks already off, mixed train/eval flags.
  m->linear("model.layers.0.mlp.up_proj")->set_hooks_enabled(false);
  m->train();
  m->base_block(0)->eval();
  const auto adapted = m->forward(ids).logits;
  ASSERT_GT(max_abs_diff(adapted, base), 1e-3);

  const auto out = teacher.forward(ids).logits;
  EXPECT_LT(max_abs_diff(out, base), 1e-6);
  EXPECT_FALSE(out.requires_grad());
  EXPECT_TRUE(teacher.shares_network());

  EXPECT_EQ(m->block(1), wrapper);
  EXPECT_EQ(m->block(0), m->base_block(0));
  for (const auto& path : m->linear_paths())
    EXPECT_EQ(m->linear(path)->hooks_enabled(), path != "model.layers.0.mlp.up_proj") << path;
  EXPECT_TRUE(m->is_training());
  EXPECT_FALSE(m->base_block(0)->is_training());
  EXPECT_TRUE(m->base_block(1)->is_training());
  EXPECT_EQ(max_abs_diff(m->forward(ids).logits, adapted), 0.0);
  EXPECT_GT(distillation_loss(adapted, out, torch::ones({2, 7}), 2.0).item<double>(), 1e-4);
}

TEST(Teacher, ScopeKeepingBlockWrappersIsTheRoutedNetworkWithoutAdapters) {
  Transformer m = make_model(12);
  torch::manual_seed(12);
  const auto ids = torch::randint(50, {2, 7});
  LoraOptions o;
  o.rank = 4;
  o.target_modules = {"all-linear"};
  auto adapters = LoraAdapters::attach(m, o);
  {
    torch::NoGradGuard no_grad;
    for (const auto& path : adapters.module_paths()) adapters.layer(path).B.normal_(0, 0.1);
  }
  auto wrapper = std::make_shared<HalfUpdateBlock>(m->base_block(1));
  m->set_block(1, wrapper);
  m->eval();
  const auto adapted = m->forward(ids).logits;
  m->set_linear_hooks_enabled(false);
  const auto routed_without_adapters = m->forward(ids).logits;  // the expected reference network
  m->set_block(1, nullptr);
  const auto base = m->forward(ids).logits;
  m->set_block(1, wrapper);
  m->set_linear_hooks_enabled(true);
  ASSERT_GT(max_abs_diff(routed_without_adapters, base), 1e-4);  // the wrapper matters
  ASSERT_GT(max_abs_diff(routed_without_adapters, adapted), 1e-3);  // and so do the adapters
  torch::NoGradGuard no_grad;
  {
    BaseNetworkScope routed(m, /*keep_block_wrappers=*/true);
    EXPECT_EQ(m->block(1), wrapper);
    EXPECT_EQ(max_abs_diff(m->forward(ids).logits, routed_without_adapters), 0.0);
  }
  {
    BaseNetworkScope plain(m);
    EXPECT_EQ(max_abs_diff(m->forward(ids).logits, base), 0.0);
  }
  EXPECT_EQ(m->block(1), wrapper);
  EXPECT_EQ(max_abs_diff(m->forward(ids).logits, adapted), 0.0);
}

TEST(Teacher, SameNetworkRestoresStateWhenForwardThrows) {
  Transformer m = make_model(13);
  LoraOptions o;
  o.target_modules = {"q_proj"};
  auto adapters = LoraAdapters::attach(m, o);
  auto wrapper = std::make_shared<HalfUpdateBlock>(m->base_block(0));
  m->set_block(0, wrapper);
  m->train();
  Teacher teacher = Teacher::same_network(m);
  EXPECT_ANY_THROW(teacher.forward(torch::full({1, 3}, 999, torch::kInt64)));  // ids beyond the vocabulary
  EXPECT_EQ(m->block(0), wrapper);
  for (const auto& path : m->linear_paths()) EXPECT_TRUE(m->linear(path)->hooks_enabled()) << path;
  EXPECT_TRUE(m->is_training());
  EXPECT_TRUE(m->base_block(1)->is_training());
}

TEST(Teacher, FrozenCopyHasNoGradientsAndKeepsItsMode) {
  Transformer student = make_model(14);
  Transformer copy = make_model(14);
  torch::manual_seed(15);
  const auto ids = torch::randint(50, {2, 6});
  const auto base = copy->forward(ids).logits;
  task_step(student, student->parameters(), 16);  // full fine-tuning moves the student only
  copy->train();
  Teacher teacher = Teacher::frozen_copy(copy);
  EXPECT_FALSE(teacher.shares_network());
  for (const auto& p : copy->parameters()) EXPECT_FALSE(p.requires_grad());
  const auto out = teacher.forward(ids).logits;
  EXPECT_EQ(max_abs_diff(out, base), 0.0);
  EXPECT_TRUE(copy->is_training());
  EXPECT_GT(distillation_loss(student->forward(ids).logits, out, torch::ones({2, 6}), 1.0).item<double>(), 0.0);
  expect_error([] { Teacher::frozen_copy(Transformer(nullptr)); }, {"Teacher::frozen_copy", "no model"});
  expect_error([] { Teacher::same_network(Transformer(nullptr)); }, {"Teacher::same_network", "no model"});
}

// ---------------------------------------------------------------- Fisher

TEST(Fisher, NonNegativeEveryParameterSeededAndRestoresTheModel) {
  Transformer m = make_model(20);
  const auto batches = general_batches();
  m->named_parameters()["model.embed_tokens.weight"].set_requires_grad(false);
  m->train();
  FisherOptions o;
  o.seed = 7;
  const auto f1 = compute_fisher(m, batches, o);
  const auto f2 = [&] {
    torch::NoGradGuard no_grad;  // a caller's no-grad scope does not stop it
    return compute_fisher(m, batches, o);
  }();
  o.seed = 8;
  const auto f3 = compute_fisher(m, batches, o);

  ASSERT_EQ(f1.size(), m->named_parameters().size());
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(f1.count(p.key())) << p.key();
    const auto& f = f1.at(p.key());
    EXPECT_EQ(f.sizes(), p.value().sizes()) << p.key();
    EXPECT_GE(f.min().item<double>(), 0.0) << p.key();
    EXPECT_GT(f.max().item<double>(), 0.0) << p.key();
    EXPECT_TRUE(torch::equal(f, f2.at(p.key()))) << p.key();
    EXPECT_FALSE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().requires_grad(), p.key() != "model.embed_tokens.weight") << p.key();
  }
  EXPECT_GT(std::abs(total(f3) / total(f1) - 1), 1e-3);
  EXPECT_TRUE(m->is_training());

  o.max_sequences = 0;
  expect_error([&] { compute_fisher(m, batches, o); }, {"FisherOptions.max_sequences"});
  TokenBatch empty = packed_batch({{1}, {1}}, 4, 3);  // one-token documents: nothing to predict
  expect_error([&] { compute_fisher(m, {empty}, FisherOptions{}); }, {"no position with a loss target"});
}

// The targets are sampled from the model: the label values do not matter (only which positions
// carry one), the empirical Fisher on the data labels is a different quantity, and the estimate
// converges to the exact expectation sum_y p(y) (d log p(y))^2.
TEST(Fisher, SamplesTargetsFromTheModel) {
  Transformer m = make_model(21);
  const auto batches = general_batches();
  const auto fisher = compute_fisher(m, batches, FisherOptions{});

  auto relabelled = batches;
  for (auto& b : relabelled)
    for (auto& l : b.labels)
      if (l != -100) l = (l + 17) % 50;
  const auto same = compute_fisher(m, relabelled, FisherOptions{});
  for (const auto& [name, f] : fisher) EXPECT_TRUE(torch::equal(f, same.at(name))) << name;

  auto masked = batches;
  masked[0].labels[3] = -100;
  EXPECT_GT(std::abs(total(compute_fisher(m, masked, FisherOptions{})) / total(fisher) - 1), 1e-4);

  // One position (token 7 predicts the next), sampled 400 times, against the exact expectation.
  TokenBatch one;
  one.rows = 400;
  one.seq_len = 2;
  for (int64_t r = 0; r < one.rows; ++r) {
    one.input_ids.insert(one.input_ids.end(), {7, 3});
    one.labels.insert(one.labels.end(), {-100, 3});
    one.attention_mask.insert(one.attention_mask.end(), {1, 1});
  }
  FisherOptions many;
  many.max_sequences = 400;
  many.seed = 5;
  std::vector<torch::Tensor> params = m->parameters();
  const double estimate = total(compute_fisher(m, {one}, many));
  const auto log_p = torch::log_softmax(m->forward(torch::tensor({{int64_t(7)}})).logits[0][0], -1);
  double exact = 0;
  for (int64_t y = 0; y < 50; ++y) {
    const auto g = torch::autograd::grad({log_p[y]}, params, {}, /*retain_graph=*/true);
    double sq = 0;
    for (const auto& x : g) sq += x.square().sum().item<double>();
    exact += std::exp(log_p[y].item<double>()) * sq;
  }
  EXPECT_NEAR(estimate / exact, 1.0, 0.15) << "estimate " << estimate << " exact " << exact;

  // Empirical Fisher: squared gradients of the model's own loss on the data labels, per row. A
  // confident model (logits scaled up through the final norm) seldom predicts the data's random
  // tokens: their gradients are large, those of its own likely samples small.
  {
    torch::NoGradGuard no_grad;
    m->named_parameters()["model.norm.weight"].mul_(100);
  }
  const double sampled = total(compute_fisher(m, batches, FisherOptions{}));
  double empirical = 0;
  int64_t rows = 0;
  for (const auto& b : batches)
    for (int64_t r = 0; r < b.rows; ++r) {
      auto slice = [&](const std::vector<int32_t>& v) {
        return torch::tensor(std::vector<int64_t>(v.begin() + r * b.seq_len, v.begin() + (r + 1) * b.seq_len)).unsqueeze(0);
      };
      ForwardOptions fo;
      fo.attention_mask = slice(b.attention_mask);
      fo.segment_ids = slice(b.segment_ids);
      const auto g = torch::autograd::grad({m->loss(m->forward(slice(b.input_ids), fo), slice(b.labels))}, params);
      for (const auto& x : g) empirical += x.square().sum().item<double>();
      ++rows;
    }
  EXPECT_GT(empirical / double(rows), 3 * sampled) << "empirical " << empirical / double(rows) << " sampled " << sampled;

}

// Encoder heads: masked LM counts the masked positions only, classification one class per row
// with a class label.
TEST(Fisher, EncoderHeads) {
  for (const std::string architecture : {"BertForMaskedLM", "BertForSequenceClassification"}) {
    torch::manual_seed(23);
    Transformer m(ModelConfig::from_json_text(
        "{\"architectures\":[\"" + architecture + "\"],\"vocab_size\":50,\"hidden_size\":16,"
        "\"intermediate_size\":24,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
        "\"max_position_embeddings\":16,\"num_labels\":3}",
        architecture));
    TokenBatch b = packed_batch({{6}, {4}, {5}}, 6, 4);
    for (auto& l : b.labels) l = -100;
    b.labels[2] = 11;  // row 0 has one masked position, rows 1 and 2 none
    b.class_labels = {1, -1, 0};
    const auto fisher = compute_fisher(m, {b}, FisherOptions{});
    EXPECT_EQ(fisher.size(), m->named_parameters().size()) << architecture;
    for (const auto& [name, f] : fisher) EXPECT_GE(f.min().item<double>(), 0.0) << architecture << " " << name;
    EXPECT_GT(total(fisher), 0.0) << architecture;
    // Only the counted rows matter: dropping the others changes nothing.
    const bool mlm = architecture == "BertForMaskedLM";
    TokenBatch counted = packed_batch(mlm ? std::vector<std::vector<int>>{{6}} : std::vector<std::vector<int>>{{6}, {5}}, 6, 4);
    counted.input_ids = std::vector<int32_t>(b.input_ids.begin(), b.input_ids.begin() + 6);
    if (!mlm) counted.input_ids.insert(counted.input_ids.end(), b.input_ids.begin() + 12, b.input_ids.end());
    counted.labels = std::vector<int32_t>(counted.input_ids.size(), -100);
    counted.labels[2] = 11;
    counted.class_labels = mlm ? std::vector<int32_t>{1} : std::vector<int32_t>{1, 0};
    const auto same = compute_fisher(m, {counted}, FisherOptions{});
    for (const auto& [name, f] : fisher) EXPECT_LT(max_abs_diff(f, same.at(name)), 1e-6) << architecture << " " << name;
  }
}

TEST(Fisher, CachedByModelDataAndOptions) {
  const std::string dir = test::temp_folder("preservation", "fisher_cache");
  const std::string data = dir + "/general.jsonl";
  write_text_file_atomic(data, "{\"text\": \"general data\"}\n");
  Transformer m = make_model(22);
  const auto batches = general_batches();
  FisherOptions o;
  o.max_sequences = 4;
  const std::string key = fisher_cache_key(m, batches, {data}, o);
  const std::string path = fisher_cache_path(dir, key);

  ::testing::internal::CaptureStdout();
  const auto computed = load_or_compute_fisher(m, batches, {data}, o, dir);
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("fisher: computed over 4 sequences"), std::string::npos);
  ASSERT_TRUE(file_exists(path));

  // The second call reads the file: doubled values written under the same key come back.
  std::map<std::string, std::string> metadata;
  auto stored = load_named_tensors(path, &metadata);
  for (auto& item : stored) item.second = item.second * 2;
  save_named_tensors(path, stored, metadata);
  ::testing::internal::CaptureStdout();
  const auto read = load_or_compute_fisher(m, batches, {data}, o, dir);
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("fisher: read " + path), std::string::npos);
  for (const auto& [name, f] : computed) EXPECT_TRUE(torch::equal(read.at(name), f * 2)) << name;

  // The key covers the options, the data files' content, the batches and the weights.
  o.seed = 1;
  EXPECT_NE(fisher_cache_key(m, batches, {data}, o), key);
  o.seed = 0;
  EXPECT_EQ(fisher_cache_key(m, batches, {data}, o), key);
  auto other_batches = batches;
  other_batches[1].input_ids[0] ^= 1;
  EXPECT_NE(fisher_cache_key(m, other_batches, {data}, o), key);
  write_text_file_atomic(data, "{\"text\": \"other data\"}\n");
  EXPECT_NE(fisher_cache_key(m, batches, {data}, o), key);
  write_text_file_atomic(data, "{\"text\": \"general data\"}\n");
  {
    torch::NoGradGuard no_grad;
    m->named_parameters()["model.norm.weight"][0] += 1e-3;
  }
  EXPECT_NE(fisher_cache_key(m, batches, {data}, o), key);
  {
    torch::NoGradGuard no_grad;
    m->named_parameters()["model.norm.weight"][0] -= 1e-3;
  }
  ASSERT_EQ(fisher_cache_key(m, batches, {data}, o), key);

  // Bad cache files are clear errors naming the file (and the tensor).
  auto bad = stored;
  bad["model.norm.weight"] = torch::ones({3});
  save_named_tensors(path, bad, metadata);
  expect_error([&] { load_or_compute_fisher(m, batches, {data}, o, dir); },
               {path, "model.norm.weight", "shape [3]", "[32]", "delete the file"});
  bad = stored;
  bad.erase("model.layers.1.mlp.up_proj.weight");
  save_named_tensors(path, bad, metadata);
  expect_error([&] { load_or_compute_fisher(m, batches, {data}, o, dir); },
               {path, "model.layers.1.mlp.up_proj.weight", "missing"});
  bad = stored;
  bad["model.layers.0.extra.weight"] = torch::ones({2});
  save_named_tensors(path, bad, metadata);
  expect_error([&] { load_or_compute_fisher(m, batches, {data}, o, dir); },
               {path, "model.layers.0.extra.weight", "not a parameter"});
  save_named_tensors(path, stored, {{"format", "something-else"}});
  expect_error([&] { load_or_compute_fisher(m, batches, {data}, o, dir); }, {path, "not a gemkit Fisher file"});
  write_text_file_atomic(path, "not a safetensors file at all");
  expect_error([&] { load_or_compute_fisher(m, batches, {data}, o, dir); }, {path, "delete the file"});
}

// ---------------------------------------------------------------- EWC, L2-SP, adapters

TEST(WeightPenalty, EwcAndL2spAreZeroUntilWeightsMoveThenPositiveWithGradients) {
  Transformer m = make_model(30);
  FisherOptions fo;
  fo.max_sequences = 6;
  const auto fisher = compute_fisher(m, general_batches(), fo);
  const WeightAnchor ewc = WeightAnchor::ewc(named_params(*m), fisher);
  const WeightAnchor l2sp = WeightAnchor::l2sp(named_params(*m));
  EXPECT_EQ(ewc.penalty(named_params(*m)).item<double>(), 0.0);
  EXPECT_EQ(l2sp.penalty(named_params(*m)).item<double>(), 0.0);

  task_step(m, m->parameters(), 31);
  double expected_ewc = 0, expected_l2sp = 0;
  for (const auto& [name, p] : named_params(*m)) {
    const auto d = (p.detach() - ewc.anchor(name)).to(torch::kFloat64);
    expected_ewc += 0.5 * (fisher.at(name).to(torch::kFloat64) * d.square()).sum().item<double>();
    expected_l2sp += 0.5 * d.square().sum().item<double>();
  }
  ASSERT_GT(expected_ewc, 0.0);
  for (const auto* anchor : {&ewc, &l2sp}) {
    const auto penalty = anchor->penalty(named_params(*m));
    const double expected = anchor == &ewc ? expected_ewc : expected_l2sp;
    EXPECT_NEAR(penalty.item<double>(), expected, 1e-5 * expected);
    for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
    penalty.backward();
    // d/dtheta = F (theta - theta*), in every parameter that moved.
    const std::string name = "model.layers.0.self_attn.q_proj.weight";
    const auto p = m->named_parameters()[name];
    const auto f = anchor == &ewc ? fisher.at(name) : torch::ones({});
    EXPECT_LT(max_abs_diff(p.grad(), f * (p.detach() - anchor->anchor(name))), 1e-7);
    EXPECT_GT(p.grad().abs().max().item<double>(), 0.0);
  }
}

// With LoRA the penalty applies to the effective weight change scale * B A: zero while B = 0,
// positive with gradients into A and B once it trains, and after merging (W = W* + delta) the
// penalty on the weights equals the penalty on the deltas.
TEST(WeightPenalty, AdapterDeltasWithLora) {
  Transformer m = make_model(32);
  const auto fisher = random_importance(m, 33);
  const WeightAnchor ewc = WeightAnchor::ewc(named_params(*m), fisher);
  LoraOptions o;
  o.rank = 4;
  o.alpha = 8;
  o.target_modules = {"q_proj", "v_proj", "down_proj"};
  auto adapters = LoraAdapters::attach(m, o);
  const auto deltas = lora_weight_deltas(adapters);
  ASSERT_EQ(deltas.size(), 6u);
  EXPECT_EQ(deltas[0].first, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(ewc.penalty_of_deltas(deltas).item<double>(), 0.0);

  m->train();
  for (int step = 0; step < 3; ++step) task_step(m, adapters.parameters(), 34 + step);
  const auto moved = lora_weight_deltas(adapters);
  double expected = 0;
  for (const auto& [name, d] : moved) {
    const std::string path = name.substr(0, name.size() - std::string(".weight").size());
    EXPECT_LT(max_abs_diff(d, adapters.layer(path).delta_weight()), 1e-7) << name;
    expected += 0.5 * (fisher.at(name).to(torch::kFloat64) * d.detach().to(torch::kFloat64).square()).sum().item<double>();
  }
  const auto penalty = ewc.penalty_of_deltas(moved);
  ASSERT_GT(expected, 0.0);
  EXPECT_NEAR(penalty.item<double>(), expected, 1e-5 * expected);
  for (auto& p : adapters.parameters()) p.mutable_grad() = torch::Tensor();
  penalty.backward();
  for (const auto& path : adapters.module_paths()) {
    EXPECT_GT(adapters.layer(path).A.grad().abs().max().item<double>(), 0.0) << path;
    EXPECT_GT(adapters.layer(path).B.grad().abs().max().item<double>(), 0.0) << path;
  }
  adapters.merge();
  EXPECT_NEAR(ewc.penalty(named_params(*m)).item<double>(), expected, 1e-3 * expected);
}

TEST(WeightPenalty, OnlineEwcConsolidatesAfterADomain) {
  Transformer m = make_model(35);
  const auto f1 = random_importance(m, 36), f2 = random_importance(m, 37);
  WeightAnchor anchor = WeightAnchor::ewc(named_params(*m), f1);
  task_step(m, m->parameters(), 38);
  const double before = anchor.penalty(named_params(*m)).item<double>();
  EXPECT_GT(before, 0.0);
  anchor.consolidate(named_params(*m), f2, 0.5);
  EXPECT_EQ(anchor.penalty(named_params(*m)).item<double>(), 0.0);  // theta* moved to the weights reached
  for (const auto& [name, p] : named_params(*m)) {
    EXPECT_LT(max_abs_diff(anchor.importance(name), 0.5 * f1.at(name) + f2.at(name)), 1e-6) << name;
    EXPECT_TRUE(torch::equal(anchor.anchor(name), p.detach())) << name;
  }
  task_step(m, m->parameters(), 39);
  EXPECT_GT(anchor.penalty(named_params(*m)).item<double>(), 0.0);

  // L2-SP's scalar F = 1 broadcasts through consolidation.
  WeightAnchor l2sp = WeightAnchor::l2sp(named_params(*m));
  l2sp.consolidate(named_params(*m), f2, 1.0);
  const std::string name = "model.norm.weight";
  EXPECT_LT(max_abs_diff(l2sp.importance(name), 1.0 + f2.at(name)), 1e-6);

  // A failed consolidation changes nothing.
  auto partial = named_params(*m);
  partial.pop_back();
  const auto kept = anchor.importance(name).clone();
  expect_error([&] { anchor.consolidate(partial, f2, 0.5); }, {"WeightAnchor::consolidate", "every anchored"});
  expect_error([&] { anchor.consolidate(named_params(*m), f2, -1); }, {"gamma"});
  EXPECT_TRUE(torch::equal(anchor.importance(name), kept));
}

TEST(WeightPenalty, ErrorsAndSaveLoad) {
  const std::string dir = test::temp_folder("preservation", "anchor");
  Transformer m = make_model(40);
  const auto fisher = random_importance(m, 41);
  const WeightAnchor ewc = WeightAnchor::ewc(named_params(*m), fisher);
  const auto w = m->named_parameters()["model.norm.weight"];

  expect_error([&] { ewc.penalty({}); }, {"WeightAnchor::penalty", "no parameters"});
  expect_error([&] { ewc.penalty({{"model.norm.wieght", w}}); }, {"model.norm.wieght", "no anchor"});
  expect_error([&] { ewc.penalty({{"model.norm.weight", w.narrow(0, 0, 4)}}); }, {"model.norm.weight", "shape [4]", "[32]"});
  expect_error([&] { ewc.penalty_of_deltas({{"lm_head.bias", w}}); }, {"penalty_of_deltas", "lm_head.bias", "no anchor"});
  auto missing = fisher;
  missing.erase("model.norm.weight");
  expect_error([&] { WeightAnchor::ewc(named_params(*m), missing); }, {"WeightAnchor::ewc", "model.norm.weight", "no Fisher"});
  auto negative = fisher;
  negative["model.norm.weight"] = -negative["model.norm.weight"];
  expect_error([&] { WeightAnchor::ewc(named_params(*m), negative); }, {"model.norm.weight", ">= 0"});
  // A subset of the anchored names is fine.
  EXPECT_EQ(ewc.penalty({{"model.norm.weight", w}}).item<double>(), 0.0);

  task_step(m, m->parameters(), 42);
  ewc.save(dir + "/ewc.safetensors");
  WeightAnchor::l2sp(named_params(*m)).save(dir + "/l2sp.safetensors");
  const WeightAnchor loaded = WeightAnchor::load(dir + "/ewc.safetensors");
  EXPECT_EQ(loaded.names(), ewc.names());
  for (const auto& name : ewc.names()) {
    EXPECT_TRUE(torch::equal(loaded.anchor(name), ewc.anchor(name))) << name;
    EXPECT_TRUE(torch::equal(loaded.importance(name), ewc.importance(name))) << name;
  }
  EXPECT_EQ(loaded.penalty(named_params(*m)).item<double>(), ewc.penalty(named_params(*m)).item<double>());
  const WeightAnchor l2sp = WeightAnchor::load(dir + "/l2sp.safetensors");
  EXPECT_EQ(l2sp.importance("model.norm.weight").dim(), 0);
  EXPECT_EQ(l2sp.penalty(named_params(*m)).item<double>(), 0.0);

  save_named_tensors(dir + "/bad.safetensors", {{"anchor.x", torch::ones({2})}}, {{"format", "gemkit-weight-anchor-v1"}});
  expect_error([&] { WeightAnchor::load(dir + "/bad.safetensors"); }, {dir + "/bad.safetensors", "importance.x"});
  save_named_tensors(dir + "/bad.safetensors", {{"anchor.x", torch::ones({2})}, {"importance.x", torch::ones({3})}},
                     {{"format", "gemkit-weight-anchor-v1"}});
  expect_error([&] { WeightAnchor::load(dir + "/bad.safetensors"); }, {"importance.x", "shape [3]"});
  save_named_tensors(dir + "/bad.safetensors", {{"anchor.x", torch::ones({2})}}, {});
  expect_error([&] { WeightAnchor::load(dir + "/bad.safetensors"); }, {"not a gemkit weight anchor"});
}

// ---------------------------------------------------------------- forgetting budget

TEST(ForgettingBudget, RaisesOverBudgetLowersWellUnderHoldsBetween) {
  ForgettingBudget b;  // budget 1%, x2 / x0.5, low water 0.5, scale in [0.01, 100]
  EXPECT_FALSE(b.due(0));
  EXPECT_TRUE(b.due(50));
  EXPECT_FALSE(b.due(51));
  EXPECT_TRUE(b.due(100));
  EXPECT_DOUBLE_EQ(b.update(50, 4.1, 4.0), 2.0);    // rise 2.5% > 1%
  EXPECT_DOUBLE_EQ(b.update(100, 4.03, 4.0), 2.0);  // 0.75%: inside the dead band
  EXPECT_DOUBLE_EQ(b.update(150, 4.01, 4.0), 1.0);  // 0.25% < 0.5%
  EXPECT_DOUBLE_EQ(b.update(200, 3.9, 4.0), 0.5);   // better than the base
  ASSERT_EQ(b.trajectory().size(), 4u);
  EXPECT_EQ(b.trajectory()[0].step, 50);
  EXPECT_NEAR(b.trajectory()[0].rise, 0.025, 1e-12);
  EXPECT_DOUBLE_EQ(b.trajectory()[3].scale, 0.5);
  for (int i = 0; i < 20; ++i) b.update(250 + 50 * i, 5.0, 4.0);
  EXPECT_DOUBLE_EQ(b.scale(), 100.0);
  for (int i = 0; i < 30; ++i) b.update(1250 + 50 * i, 4.0, 4.0);
  EXPECT_DOUBLE_EQ(b.scale(), 0.01);

  expect_error([&] { b.update(10, NAN, 4.0); }, {"not finite"});
  expect_error([&] { b.update(10, 4.0, 0.0); }, {"base model's general loss"});
  ForgettingBudgetOptions o;
  o.lower = 1.5;
  expect_error([&] { ForgettingBudget{o}; }, {"ForgettingBudgetOptions.lower"});
  o = {};
  o.every = 0;
  expect_error([&] { ForgettingBudget{o}; }, {"ForgettingBudgetOptions.every"});
}

TEST(ForgettingBudget, StateRoundTripsForAnExactResume) {
  ForgettingBudget a;
  const double base = std::exp(1.0);
  for (int i = 1; i <= 5; ++i) a.update(50 * i, base * (1 + 0.013 * std::sin(double(i))), base);
  const std::string text = a.state().dump();

  ForgettingBudget b;
  b.load_state(json::parse(text), "trainer_state.json");
  EXPECT_EQ(b.state().dump(), text);
  EXPECT_EQ(b.scale(), a.scale());
  EXPECT_EQ(a.update(300, base * 1.02, base), b.update(300, base * 1.02, base));
  EXPECT_EQ(a.state(), b.state());

  expect_error([&] { b.load_state(json{{"format", "gemkit-forgetting-budget-v1"}}, "ckpt.json"); },
               {"ckpt.json", "forgetting budget state"});
  expect_error([&] { b.load_state(json{{"format", "x"}, {"scale", 1.0}, {"trajectory", json::array()}}, "ckpt.json"); },
               {"ckpt.json", "format"});
  expect_error(
      [&] { b.load_state(json{{"format", "gemkit-forgetting-budget-v1"}, {"scale", 1e6}, {"trajectory", json::array()}}, "c.json"); },
      {"c.json", "outside"});
  EXPECT_EQ(b.state(), a.state());  // failed loads change nothing
}
