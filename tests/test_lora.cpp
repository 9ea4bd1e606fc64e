// LoRA adapters (model/lora.h) and PEFT adapter folders (export/peft_export.h): target
// selection, PEFT initialisation, merge/unmerge, gradients against an explicit dense
// computation, dropout, export -> load round trips, and an independent reading of the
// exported files by Python (stdlib + torch, no peft/safetensors packages).
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "export/peft_export.h"
#include "model/checkpoint.h"
#include "model/lora.h"

using namespace gemkit;
namespace fs = std::filesystem;

namespace {

ModelConfig tiny_config(const std::string& architecture = "LlamaForCausalLM", const std::string& extra = "") {
  const bool bert = architecture.rfind("Bert", 0) == 0;
  return ModelConfig::from_json_text(
      "{\"architectures\":[\"" + architecture + "\"],\"vocab_size\":32,\"hidden_size\":16," +
          "\"intermediate_size\":24,\"num_hidden_layers\":2,\"num_attention_heads\":4," +
          (bert ? "" : "\"num_key_value_heads\":2,") + "\"max_position_embeddings\":16" + extra + "}",
      architecture + " config");
}

Transformer make_model(uint64_t seed, const ModelConfig& config = tiny_config()) {
  torch::manual_seed(seed);
  Transformer m(config);
  m->eval();
  return m;
}

torch::Tensor ids() { return torch::tensor({{1, 5, 7, 2, 9, 3}, {4, 4, 8, 1, 0, 6}}, torch::kInt64); }

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.detach() - b.detach()).abs().max().item<double>();
}

// Gives every B a non-zero value (B starts at zero, which would hide most errors).
void randomise_b(LoraAdapters& adapters, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (const auto& path : adapters.module_paths()) adapters.layer(path).B.normal_(0, 0.1);
}

struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name)
      : path(::testing::TempDir() + "gemkit_lora_" + std::to_string(::getpid()) + "_" + name) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

using test::expect_error;

}  // namespace

TEST(LoraTargets, PlainNamesRegexesAndAllLinear) {
  EXPECT_TRUE(lora_target_matches("q_proj", "model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(lora_target_matches("self_attn.q_proj", "model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(lora_target_matches("proj", "model.layers.0.self_attn.q_proj"));  // whole components only
  EXPECT_TRUE(lora_target_matches("re:.*layers\\.1\\..*_proj", "model.layers.1.mlp.up_proj"));
  EXPECT_FALSE(lora_target_matches("re:layers\\.1", "model.layers.1.mlp.up_proj"));  // full match
  EXPECT_TRUE(lora_target_matches("all-linear", "model.layers.1.mlp.up_proj"));
  EXPECT_FALSE(lora_target_matches("all-linear", "lm_head"));

  Transformer m = make_model(1);
  EXPECT_EQ(lora_select_modules(m, {"q_proj", "v_proj"}),
            (std::vector<std::string>{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                                      "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}));
  EXPECT_EQ(lora_select_modules(m, {"re:model\\.layers\\.1\\.mlp\\..*"}).size(), 3u);
  EXPECT_EQ(lora_select_modules(m, {"all-linear"}).size(), 14u);  // 7 per block, no lm_head
  expect_error([&] { lora_select_modules(m, {"q_proj", "query"}); }, {"target_modules", "\"query\"", "matches no"});
  expect_error([&] { lora_select_modules(m, {"re:(unclosed"}); }, {"invalid regex"});
  expect_error([&] { lora_select_modules(m, {}); }, {"target_modules", "empty"});

  // BERT layout: PEFT's usual names for it.
  Transformer bert = make_model(1, tiny_config("BertForSequenceClassification", ",\"num_labels\":3"));
  EXPECT_EQ(lora_select_modules(bert, {"query", "value"}).size(), 4u);
  for (const auto& p : lora_select_modules(bert, {"all-linear"})) EXPECT_NE(p, "classifier");
}

TEST(Lora, AttachInitialisesLikePeftAndFreezesTheBase) {
  Transformer m = make_model(2);
  const auto before = m->forward(ids()).logits;
  LoraOptions o;
  o.rank = 4;
  o.alpha = 8;
  auto adapters = LoraAdapters::attach(m, o);
  EXPECT_DOUBLE_EQ(adapters.scale(), 2.0);
  ASSERT_EQ(adapters.module_paths().size(), 4u);
  EXPECT_EQ(adapters.parameters().size(), 8u);
  for (const auto& p : m->parameters()) EXPECT_FALSE(p.requires_grad());
  for (const auto& p : adapters.parameters()) EXPECT_TRUE(p.requires_grad());
  const auto& q = adapters.layer("model.layers.0.self_attn.q_proj");
  EXPECT_EQ(q.A.sizes(), (torch::IntArrayRef{4, 16}));
  EXPECT_EQ(q.B.sizes(), (torch::IntArrayRef{16, 4}));
  EXPECT_EQ(q.B.abs().max().item<double>(), 0.0);
  // kaiming_uniform(a = sqrt(5)) on fan_in 16: U(-1/4, 1/4), and not degenerate.
  EXPECT_LE(q.A.abs().max().item<double>(), 0.25);
  EXPECT_GT(q.A.abs().max().item<double>(), 0.15);
  const auto& v = adapters.layer("model.layers.0.self_attn.v_proj");
  EXPECT_EQ(v.B.sizes(), (torch::IntArrayRef{8, 4}));  // 2 KV heads x head_dim 4
  EXPECT_GT(max_abs_diff(q.A, v.A), 0.0);  // distinct per-layer streams
  // B = 0: the model computes exactly what it did.
  EXPECT_EQ(max_abs_diff(before, m->forward(ids()).logits), 0.0);
  // Same seed, same init; another seed, another init.
  Transformer m2 = make_model(2);
  auto again = LoraAdapters::attach(m2, o);
  EXPECT_EQ(max_abs_diff(q.A, again.layer("model.layers.0.self_attn.q_proj").A), 0.0);
  Transformer m3 = make_model(2);
  o.seed = 5;
  auto other = LoraAdapters::attach(m3, o);
  EXPECT_GT(max_abs_diff(q.A, other.layer("model.layers.0.self_attn.q_proj").A), 0.0);
  // A second adapter on the same layer is refused.
  expect_error([&] { LoraAdapters::attach(m, o); }, {"already carries"});
  LoraOptions bad;
  bad.rank = 0;
  expect_error([&] { LoraAdapters::attach(m2, bad); }, {"lora.rank"});
  bad.rank = 17;
  Transformer m4 = make_model(2);
  expect_error([&] { LoraAdapters::attach(m4, bad); }, {"lora.rank", "exceeds"});
  LoraOptions rs;
  rs.rank = 4;
  rs.alpha = 8;
  rs.rslora = true;
  EXPECT_DOUBLE_EQ(rs.scale(), 4.0);
}

TEST(Lora, MergeKeepsOutputsAndUnmergeRestoresWeights) {
  Transformer m = make_model(3);
  LoraOptions o;
  o.rank = 4;
  o.alpha = 16;
  o.target_modules = {"all-linear"};
  auto adapters = LoraAdapters::attach(m, o);
  randomise_b(adapters, 30);
  std::map<std::string, torch::Tensor> w0;
  for (const auto& p : adapters.module_paths()) w0[p] = m->linear(p)->weight.detach().clone();

  const auto hooked = m->forward(ids()).logits;
  const auto base_out = [&] {
    adapters.set_enabled(false);
    auto y = m->forward(ids()).logits;
    adapters.set_enabled(true);
    return y;
  }();
  EXPECT_GT(max_abs_diff(hooked, base_out), 1e-3);  // the adapters do something

  adapters.merge();
  EXPECT_TRUE(adapters.merged());
  adapters.merge();  // no-op
  const auto merged = m->forward(ids()).logits;
  const double merge_err = max_abs_diff(hooked, merged);
  EXPECT_LT(merge_err, 1e-5) << merge_err;
  // The merged weight is W + scale B A.
  const auto& q = adapters.layer("model.layers.0.self_attn.q_proj");
  const auto expected_w = w0.at("model.layers.0.self_attn.q_proj") + 4.0 * torch::matmul(q.B, q.A);
  EXPECT_LT(max_abs_diff(m->linear("model.layers.0.self_attn.q_proj")->weight, expected_w), 1e-6);

  adapters.unmerge();
  EXPECT_FALSE(adapters.merged());
  double restore_err = 0;
  for (const auto& p : adapters.module_paths())
    restore_err = std::max(restore_err, max_abs_diff(m->linear(p)->weight, w0.at(p)));
  EXPECT_LT(restore_err, 1e-6) << restore_err;
  EXPECT_LT(max_abs_diff(m->forward(ids()).logits, hooked), 1e-5);
  std::cout << "[lora] merge output max err " << merge_err << ", unmerge weight max err " << restore_err << "\n";

  // Switched off while merged: no effect (the delta is in the weights); detach keeps merged
  // weights (merge_and_unload) and removes the hooks.
  adapters.merge();
  adapters.set_enabled(false);
  EXPECT_LT(max_abs_diff(m->forward(ids()).logits, hooked), 1e-5);
  adapters.detach();
  for (const auto& p : adapters.module_paths()) EXPECT_TRUE(m->linear(p)->hooks().empty());
  EXPECT_LT(max_abs_diff(m->forward(ids()).logits, hooked), 1e-5);
}

// The adapter's gradients against the same model computed densely: a hook that replaces W by
// W + scale B A (transform_weight) with its own copies of A and B.
namespace {
struct DenseDelta : LinearHook {
  torch::Tensor A, B;
  double scale;
  torch::Tensor transform_weight(const torch::Tensor& w) override { return w + scale * torch::matmul(B, A); }
};
}  // namespace

TEST(Lora, GradientsMatchAnExplicitDenseComputation) {
  const auto config = tiny_config();
  Transformer m = make_model(4, config);
  m->to(torch::kFloat64);
  Transformer dense = make_model(4, config);
  dense->to(torch::kFloat64);
  LoraOptions o;
  o.rank = 3;
  o.alpha = 5;
  o.rslora = true;
  o.target_modules = {"q_proj", "v_proj", "down_proj"};
  auto adapters = LoraAdapters::attach(m, o);
  randomise_b(adapters, 40);
  std::vector<std::shared_ptr<DenseDelta>> hooks;
  for (const auto& p : adapters.module_paths()) {
    auto h = std::make_shared<DenseDelta>();
    h->A = adapters.layer(p).A.detach().clone().set_requires_grad(true);
    h->B = adapters.layer(p).B.detach().clone().set_requires_grad(true);
    h->scale = adapters.scale();
    dense->linear(p)->add_hook(h);
    hooks.push_back(h);
  }
  for (auto& p : dense->parameters()) p.set_requires_grad(false);
  const auto labels = ids();
  auto loss = m->loss(m->forward(ids()), labels);
  auto loss_dense = dense->loss(dense->forward(ids()), labels);
  EXPECT_LT(std::abs(loss.item<double>() - loss_dense.item<double>()), 1e-12);
  loss.backward();
  loss_dense.backward();
  double err = 0, norm = 0;
  const auto paths = adapters.module_paths();
  for (size_t i = 0; i < paths.size(); ++i) {
    const auto& l = adapters.layer(paths[i]);
    ASSERT_TRUE(l.A.grad().defined());
    err = std::max({err, max_abs_diff(l.A.grad(), hooks[i]->A.grad()), max_abs_diff(l.B.grad(), hooks[i]->B.grad())});
    norm = std::max(norm, l.B.grad().abs().max().item<double>());
  }
  EXPECT_GT(norm, 1e-6);  // gradients are not trivially zero
  EXPECT_LT(err, 1e-12) << err;
  // The frozen base gets no gradient.
  for (const auto& p : m->parameters()) EXPECT_FALSE(p.grad().defined());

  // And central finite differences on one layer alone, in float64 (the model itself rounds
  // through float32 in RMSNorm, RoPE and the loss, which would drown a finite difference).
  torch::manual_seed(41);
  Linear lin(6, 5, true);
  lin->to(torch::kFloat64);
  auto hook = std::make_shared<LoraLayer>(lin.get(), 2, 1.5, 0.0, 7);
  {
    torch::NoGradGuard ng;
    hook->B.normal_();
  }
  lin->add_hook(hook);
  const auto x = torch::randn({4, 6}, torch::kFloat64);
  const auto R = torch::randn({4, 5}, torch::kFloat64);
  auto objective = [&] { return (lin->forward(x) * R).sum(); };
  objective().backward();
  double fd_err = 0;
  for (torch::Tensor t : {hook->A, hook->B}) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      auto flat = t.view({-1});
      const double g = t.grad().view({-1})[i].item<double>();
      auto shifted = [&](double d) {
        torch::NoGradGuard ng;
        flat[i] += d;
        const double v = objective().item<double>();
        flat[i] -= d;
        return v;
      };
      const double h = 1e-6;
      fd_err = std::max(fd_err, std::abs((shifted(h) - shifted(-h)) / (2 * h) - g));
    }
  }
  EXPECT_LT(fd_err, 1e-7) << fd_err;
  std::cout << "[lora] finite-difference gradient max err " << fd_err << "\n";
  std::cout << "[lora] dense-vs-hook gradient max err " << err << "\n";
}

TEST(Lora, DropoutOnlyInTrainingAndSeeded) {
  LoraOptions o;
  o.rank = 4;
  o.dropout = 0.5;
  o.seed = 9;
  auto run = [&](bool training) {
    Transformer m = make_model(5);
    auto a = LoraAdapters::attach(m, o);
    randomise_b(a, 50);
    m->train(training);
    return std::make_pair(m->forward(ids()).logits.detach(), m->forward(ids()).logits.detach());
  };
  const auto [eval1, eval2] = run(false);
  EXPECT_EQ(max_abs_diff(eval1, eval2), 0.0);
  const auto [train1, train2] = run(true);
  EXPECT_GT(max_abs_diff(train1, eval1), 1e-4);   // dropout acts in training
  EXPECT_GT(max_abs_diff(train1, train2), 1e-4);  // fresh masks each call
  const auto [again1, again2] = run(true);
  EXPECT_EQ(max_abs_diff(train1, again1), 0.0);  // and the same sequence for the same seed
  EXPECT_EQ(max_abs_diff(train2, again2), 0.0);
}

TEST(Lora, NamedParametersAndDeviceMovesKeepIdentity) {
  Transformer m = make_model(6);
  auto a = LoraAdapters::attach(m, {});
  const auto named = a.named_parameters();
  ASSERT_EQ(named.size(), 8u);
  ASSERT_TRUE(named.count("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
  EXPECT_TRUE(named.at("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
                  .is_same(a.layer("model.layers.0.self_attn.q_proj").A));
  const auto before = a.parameters();
  a.to(torch::kCPU);
  const auto after = a.parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(before[i].is_same(after[i]));
  auto bad = named;
  bad.erase(bad.begin());
  expect_error([&] { a.load_named_parameters(bad, "x.safetensors"); }, {"x.safetensors", "missing tensor"});
  bad = named;
  bad["base_model.model.lm_head.lora_A.weight"] = torch::zeros({8, 16});
  expect_error([&] { a.load_named_parameters(bad, "x.safetensors"); }, {"unexpected tensor", "lm_head"});
  bad = named;
  bad.begin()->second = torch::zeros({2, 16});
  expect_error([&] { a.load_named_parameters(bad, "x.safetensors"); }, {"shape [2, 16]", "expected [8, 16]"});
}

TEST(PeftExport, RoundTripOntoAFreshModel) {
  TempDir dir("roundtrip");
  for (const auto& config : {tiny_config(), tiny_config("BertForSequenceClassification", ",\"num_labels\":3")}) {
    SCOPED_TRACE(config.architecture);
    const bool bert = config.family == Family::Encoder;
    Transformer m = make_model(7, config);
    LoraOptions o;
    o.rank = 2;
    o.alpha = 6;
    o.dropout = 0.1;
    o.target_modules = bert ? std::vector<std::string>{"query", "re:.*output\\.dense"}
                            : std::vector<std::string>{"q_proj", "v_proj", "up_proj"};
    auto a = LoraAdapters::attach(m, o);
    randomise_b(a, 70);
    const std::string folder = dir.path + "/" + config.architecture;
    PeftExportOptions eo;
    eo.base_model_name_or_path = "out/models/base";
    export_peft_adapter(a, m, folder, eo);
    expect_error([&] { export_peft_adapter(a, m, folder, eo); }, {folder, "overwrite"});
    eo.overwrite = true;
    export_peft_adapter(a, m, folder, eo);

    const auto cfg = nlohmann::json::parse(read_text_file(folder + "/adapter_config.json"));
    EXPECT_EQ(cfg["peft_type"], "LORA");
    EXPECT_EQ(cfg["task_type"], bert ? "SEQ_CLS" : "CAUSAL_LM");
    EXPECT_EQ(cfg["r"], 2);
    EXPECT_EQ(cfg["lora_alpha"], 6.0);
    EXPECT_EQ(cfg["lora_dropout"], 0.1);
    EXPECT_EQ(cfg["use_rslora"], false);
    EXPECT_EQ(cfg["bias"], "none");
    EXPECT_EQ(cfg["fan_in_fan_out"], false);
    EXPECT_EQ(cfg["inference_mode"], true);
    EXPECT_EQ(cfg["base_model_name_or_path"], "out/models/base");
    if (bert)  // a regex is written as the explicit module list
      EXPECT_EQ(cfg["target_modules"].size(), a.module_paths().size());
    else
      EXPECT_EQ(cfg["target_modules"], nlohmann::json({"q_proj", "v_proj", "up_proj"}));

    SafetensorsFile file(folder + "/adapter_model.safetensors");
    EXPECT_EQ(file.tensors().size(), 2 * a.module_paths().size());
    const std::string first = a.module_paths()[0];
    const auto& av = file.at("base_model.model." + first + ".lora_A.weight");
    EXPECT_EQ(av.dtype, DType::F32);
    EXPECT_EQ(av.shape, (std::vector<int64_t>{2, m->linear(first)->in_features()}));
    EXPECT_EQ(file.at("base_model.model." + first + ".lora_B.weight").shape,
              (std::vector<int64_t>{m->linear(first)->out_features(), 2}));

    Transformer fresh = make_model(7, config);  // same base weights
    auto loaded = load_peft_adapter(fresh, folder);
    EXPECT_EQ(loaded.module_paths(), a.module_paths());
    EXPECT_DOUBLE_EQ(loaded.scale(), a.scale());
    EXPECT_EQ(max_abs_diff(fresh->forward(ids()).logits, m->forward(ids()).logits), 0.0);
    for (const auto& p : fresh->parameters()) EXPECT_FALSE(p.requires_grad());

    a.merge();
    expect_error([&] { export_peft_adapter(a, m, folder, eo); }, {"merged", "unmerge"});
  }
}

TEST(PeftExport, LoaderRejectsMismatchesWithClearErrors) {
  TempDir dir("errors");
  Transformer m = make_model(8);
  LoraOptions o;
  o.rank = 2;
  auto a = LoraAdapters::attach(m, o);
  const std::string folder = dir.path + "/adapter";
  export_peft_adapter(a, m, folder);
  const std::string cfg_path = folder + "/adapter_config.json";
  const auto good = nlohmann::json::parse(read_text_file(cfg_path));
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto j = good;
    edit(j);
    write_text_file_atomic(cfg_path, j.dump());
  };
  auto expect_load_error = [&](const std::vector<std::string>& parts) {
    Transformer fresh = make_model(8);
    expect_error([&] { load_peft_adapter(fresh, folder); }, parts);
    for (const auto& p : fresh->linear_paths()) EXPECT_TRUE(fresh->linear(p)->hooks().empty()) << p;
    for (const auto& p : fresh->parameters()) EXPECT_TRUE(p.requires_grad());
  };
  with([](auto& j) { j["r"] = 4; });
  expect_load_error({"adapter_model.safetensors", "shape [2, 16]", "expected [4, 16]"});
  with([](auto& j) { j["target_modules"] = {"q_proj", "v_proj", "k_proj"}; });
  expect_load_error({"missing tensor", "k_proj.lora_A.weight"});
  with([](auto& j) { j["target_modules"] = {"q_proj"}; });
  expect_load_error({"unexpected tensor", "v_proj"});
  with([](auto& j) { j["target_modules"] = {"query"}; });
  expect_load_error({"adapter_config.json", "\"query\" matches no"});
  with([](auto& j) { j["bias"] = "all"; });
  expect_load_error({"adapter_config.json", "bias"});
  with([](auto& j) { j["peft_type"] = "IA3"; });
  expect_load_error({"peft_type", "LORA"});
  with([](auto& j) { j["fan_in_fan_out"] = true; });
  expect_load_error({"fan_in_fan_out"});
  with([](auto& j) { j["rank_pattern"] = {{"q_proj", 4}}; });
  expect_load_error({"rank_pattern"});
  // A string target_modules is PEFT's full-match regex.
  with([](auto& j) { j["target_modules"] = ".*\\.(q|v)_proj"; });
  Transformer fresh = make_model(8);
  EXPECT_EQ(load_peft_adapter(fresh, folder).module_paths().size(), 4u);
  Transformer none = make_model(8);
  expect_error([&] { load_peft_adapter(none, dir.path); }, {"not a PEFT adapter folder"});
}

// An independent reading: Python parses both safetensors files itself (json + struct +
// torch.frombuffer), merges W + (alpha / r) B A per docs/design/formats.md, and compares with the weights
// gemkit merged and saved, and a linear layer's output on a fixed input.
TEST(PeftExport, PythonReadsTheAdapterAndAgreesOnMergedWeights) {
  TempDir dir("python");
  Transformer m = make_model(9);
  const std::string base = dir.path + "/base", adapter = dir.path + "/adapter", merged = dir.path + "/merged";
  save_pretrained(m, {}, base);
  LoraOptions o;
  o.rank = 4;
  o.alpha = 12;
  o.target_modules = {"q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"};
  auto a = LoraAdapters::attach(m, o);
  randomise_b(a, 90);
  PeftExportOptions eo;
  eo.base_model_name_or_path = base;
  export_peft_adapter(a, m, adapter, eo);
  a.merge();
  save_pretrained(m, {}, merged);

  const std::string script = std::string(GEMKIT_SOURCE_DIR) + "/tests/reference/peft_merge_check.py";
  const std::string cmd = std::string(GEMKIT_TORCH_PYTHON) + " " + script + " " + base + " " + adapter + " " +
                          merged + " > " + dir.path + "/py.log 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string log = read_text_file(dir.path + "/py.log");
  std::cout << log;
  EXPECT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("checked 10 layers"), std::string::npos) << log;
}

// Training only the adapters: the loss falls on a fixed batch and the base stays bit-identical.
// (The fixed lm_head of a random tiny model keeps logits small, so the fall is modest.)
TEST(Lora, TrainingMovesOnlyTheAdapters) {
  Transformer m = make_model(10);
  std::map<std::string, torch::Tensor> base;
  for (const auto& p : m->named_parameters()) base[p.key()] = p.value().detach().clone();
  LoraOptions o;
  o.rank = 4;
  o.target_modules = {"all-linear"};
  o.dropout = 0.05;
  auto a = LoraAdapters::attach(m, o);
  m->train();
  torch::optim::AdamW opt(a.parameters(), torch::optim::AdamWOptions(1e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    auto loss = m->loss(m->forward(ids()), ids());
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first - 0.1) << first << " -> " << last;
  for (const auto& p : m->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), base.at(p.key()))) << p.key();
}
