// The torch bridge and checkpoint folders: strict loading, dtype-preserving round trips
// (F32, F16, BF16, single file and sharded), config.json and tokenizer files.
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"
#include "model/state_dict.h"

using namespace gemkit;
namespace fs = std::filesystem;

namespace {

std::string temp_folder(const std::string& name) { return test::temp_folder("ckpt", name); }

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

using test::expect_error;

// A tiny module with Hugging Face style nested names, a bias-free linear and an integer
// buffer, standing in for the transformer.
struct BlockImpl : torch::nn::Module {
  BlockImpl() {
    q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(8, 8).bias(false)));
    norm = register_parameter("norm_weight", torch::ones({8}));
  }
  torch::nn::Linear q_proj{nullptr};
  torch::Tensor norm;
};
TORCH_MODULE(Block);

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    embed = register_module("embed_tokens", torch::nn::Embedding(16, 8));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int i = 0; i < 2; ++i) layers->push_back(Block());
    head = register_module("lm_head", torch::nn::Linear(8, 16));
    position_ids = register_buffer("position_ids", torch::arange(4, torch::kInt64));
  }
  torch::nn::Embedding embed{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Linear head{nullptr};
  torch::Tensor position_ids;
};
TORCH_MODULE(Tiny);

// Random weights rounded so they are exact in `dtype`, as a checkpoint stored in it would be.
Tiny random_tiny(torch::ScalarType dtype, uint64_t seed) {
  torch::manual_seed(seed);
  Tiny t;
  torch::NoGradGuard no_grad;
  for (auto& p : t->parameters()) p.copy_(torch::randn_like(p).to(dtype).to(torch::kFloat32));
  return t;
}

// Writes `module` as a checkpoint with every float tensor in `dtype`.
void save_as(const Tiny& module, DType dtype, const std::string& folder, uint64_t max_shard = 1u << 30) {
  SaveOptions options;
  options.fallback_dtype = dtype;
  options.max_shard_bytes = max_shard;
  options.overwrite = true;
  ModelConfig config = ModelConfig::from_json_text(
      R"({"architectures":["LlamaForCausalLM"],"vocab_size":16,"hidden_size":8,"intermediate_size":16,)"
      R"("num_hidden_layers":2,"num_attention_heads":2,"max_position_embeddings":4,"custom_key":"kept"})",
      "tiny config");
  save_pretrained(*module, config, {}, folder, options);
}

std::map<std::string, std::string> tensor_bytes(const std::string& folder) {
  std::map<std::string, std::string> out;
  const SafetensorsSet set = SafetensorsSet::open(folder);
  for (const auto& [name, view] : set.tensors())
    out[name] = std::string(std::string(dtype_name(view->dtype)) + ":" +
                            std::string(reinterpret_cast<const char*>(view->data), view->nbytes));
  return out;
}

void expect_same_state(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto sa = module_state(a), sb = module_state(b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [name, t] : sa) EXPECT_TRUE(torch::equal(t, sb.at(name))) << name;
}

}  // namespace

TEST(StateDict, DtypeConversionsAndViews) {
  EXPECT_EQ(to_torch_dtype(DType::BF16), torch::kBFloat16);
  EXPECT_EQ(to_safetensors_dtype(torch::kFloat16, "x"), DType::F16);
  expect_error([] { to_safetensors_dtype(torch::kComplexFloat, "tensor z"); }, {"tensor z", "ComplexFloat"});
  const float values[3] = {1.5f, -2.f, 3.25f};
  TensorView view;
  view.name = "v";
  view.dtype = DType::F32;
  view.shape = {3};
  view.data = reinterpret_cast<const uint8_t*>(values);
  view.nbytes = 12;
  EXPECT_TRUE(torch::equal(to_tensor(view), torch::tensor({1.5f, -2.f, 3.25f})));
}

// Load-then-save reproduces the stored bytes for F32, F16 and BF16, single and sharded:
// F16/BF16 values are exact in the fp32 parameters and convert back exactly.
TEST(Checkpoint, LoadThenSaveIsByteIdenticalPerDtype) {
  const std::vector<std::pair<DType, torch::ScalarType>> dtypes = {
      {DType::F32, torch::kFloat32}, {DType::F16, torch::kFloat16}, {DType::BF16, torch::kBFloat16}};
  for (const auto& [dtype, torch_dtype] : dtypes) {
    for (uint64_t max_shard : {uint64_t(1) << 30, uint64_t(600)}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + (max_shard < 1000 ? " sharded" : " single"));
      const std::string src = temp_folder("src"), dst = temp_folder("dst");
      const Tiny original = random_tiny(torch_dtype, 7);
      save_as(original, dtype, src, max_shard);
      EXPECT_EQ(fs::exists(src + "/model.safetensors.index.json"), max_shard < 1000);

      Tiny loaded = random_tiny(torch::kFloat32, 99);
      const TensorDtypes recorded = load_weights(*loaded, src);
      expect_same_state(*loaded, *original);
      EXPECT_EQ(recorded.at("layers.0.q_proj.weight"), dtype);
      EXPECT_EQ(recorded.at("position_ids"), DType::I64);
      EXPECT_EQ(loaded->embed->weight.scalar_type(), torch::kFloat32);

      SaveOptions options;  // fallback F32: only the recorded dtypes can reproduce F16/BF16
      options.max_shard_bytes = max_shard;
      save_pretrained(*loaded, ModelConfig::load(src + "/config.json"), recorded, dst, options);
      EXPECT_EQ(tensor_bytes(dst), tensor_bytes(src));
      // Our writer is deterministic, so the files themselves are identical too.
      for (const auto& entry : fs::directory_iterator(src))
        EXPECT_EQ(read_text_file(entry.path().string()),
                  read_text_file(dst + "/" + entry.path().filename().string()))
            << entry.path();
    }
  }
}

TEST(Checkpoint, StrictLoadingNamesFileTensorAndExpectation) {
  const std::string dir = temp_folder("strict");
  save_as(random_tiny(torch::kFloat32, 1), DType::F32, dir);
  const std::string file = dir + "/model.safetensors";
  fs::copy_file(file, dir + "/keep.safetensors");
  const SafetensorsFile keep(dir + "/keep.safetensors");

  // Rewrites the checkpoint from the kept copy with `edit` applied to the tensor list.
  auto rewrite = [&](const std::function<void(std::vector<TensorView>&)>& edit) {
    std::vector<TensorView> views = keep.tensors();
    edit(views);
    SafetensorsWriter w;
    for (const auto& v : views) w.add(v.name, v.dtype, v.shape, v.data, v.nbytes);
    w.write(file);
  };

  Tiny target = random_tiny(torch::kFloat32, 2);
  std::map<std::string, torch::Tensor> snapshot;
  for (const auto& [name, t] : module_state(*target)) snapshot[name] = t.clone();
  auto expect_untouched = [&] {
    for (const auto& [name, t] : module_state(*target)) EXPECT_TRUE(torch::equal(t, snapshot.at(name))) << name;
  };

  rewrite([](std::vector<TensorView>& v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](const TensorView& t) { return t.name == "lm_head.bias"; }), v.end());
  });
  expect_error([&] { load_weights(*target, dir); }, {file, "tensor lm_head.bias", "expected in the checkpoint", "[16]"});
  expect_untouched();

  const std::vector<float> extra(3, 0.f);
  rewrite([&](std::vector<TensorView>& v) {
    TensorView t = v.front();
    t.name = "rotary.inv_freq";
    t.shape = {3};
    t.dtype = DType::F32;
    t.data = reinterpret_cast<const uint8_t*>(extra.data());
    t.nbytes = 12;
    v.push_back(t);
  });
  expect_error([&] { load_weights(*target, dir); }, {file, "tensor rotary.inv_freq", "unexpected"});
  expect_untouched();
  // ...unless the caller declares it ignorable.
  EXPECT_NO_THROW(load_weights(*target, dir, {"rotary.inv_freq"}));

  target = random_tiny(torch::kFloat32, 2);
  for (const auto& [name, t] : module_state(*target)) snapshot[name] = t.clone();
  rewrite([](std::vector<TensorView>& v) {
    for (auto& t : v)
      if (t.name == "layers.1.q_proj.weight") t.shape = {4, 16};
  });
  expect_error([&] { load_weights(*target, dir); },
               {file, "tensor layers.1.q_proj.weight", "expected shape [8, 8], got [4, 16]"});
  expect_untouched();

  const std::vector<int32_t> ints(8, 1);
  rewrite([&](std::vector<TensorView>& v) {
    for (auto& t : v)
      if (t.name == "layers.0.norm_weight") {
        t.dtype = DType::I32;
        t.data = reinterpret_cast<const uint8_t*>(ints.data());
      }
  });
  expect_error([&] { load_weights(*target, dir); },
               {file, "tensor layers.0.norm_weight", "expected a floating-point dtype, got I32"});
  expect_untouched();

  // Several problems: the first is reported with a count of the rest.
  rewrite([](std::vector<TensorView>& v) { v.resize(2); });
  expect_error([&] { load_weights(*target, dir); }, {file, "expected in the checkpoint", "more problems"});

  expect_error([&] { load_weights(*target, dir + "/nope"); }, {dir + "/nope", "checkpoint folder"});
}

TEST(Checkpoint, ShardedLoadingReportsTheShard) {
  const std::string dir = temp_folder("shardstrict");
  save_as(random_tiny(torch::kFloat32, 3), DType::F32, dir, 600);
  const auto index = nlohmann::json::parse(read_text_file(dir + "/model.safetensors.index.json"));
  const std::string shard = index["weight_map"]["layers.1.q_proj.weight"];

  // A module whose layer is narrower than the checkpoint's: the error names the shard file.
  Tiny target;
  {
    torch::NoGradGuard no_grad;
    target->layers[1]->as<BlockImpl>()->q_proj->weight.set_data(torch::zeros({8, 4}));
  }
  expect_error([&] { load_weights(*target, dir); },
               {dir + "/" + shard, "tensor layers.1.q_proj.weight", "expected shape [8, 4], got [8, 8]"});
}

TEST(Checkpoint, SaveRefusesNonEmptyFolderAndCopiesTokenizer) {
  const std::string tokenizer = temp_folder("tok"), out = temp_folder("out");
  write_text(tokenizer + "/tokenizer.json", R"({"model":{"type":"BPE"}})");
  write_text(tokenizer + "/tokenizer_config.json", "{}");
  write_text(tokenizer + "/generation_config.json", R"({"do_sample":false})");
  write_text(tokenizer + "/unrelated.txt", "not copied");

  const Tiny tiny = random_tiny(torch::kFloat32, 4);
  const ModelConfig config = ModelConfig::from_json_text(
      R"({"architectures":["LlamaForCausalLM"],"vocab_size":16,"hidden_size":8,"intermediate_size":16,)"
      R"("num_hidden_layers":2,"num_attention_heads":2,"max_position_embeddings":4,"custom_key":"kept",)"
      R"("torch_dtype":"float32"})",
      "cfg");
  SaveOptions options;
  options.tokenizer_source = tokenizer;
  const std::string folder = out + "/ckpt";  // created on demand
  TensorDtypes dtypes;
  for (const auto& [name, t] : module_state(*tiny))
    if (t.is_floating_point()) dtypes[name] = DType::BF16;
  save_pretrained(*tiny, config, dtypes, folder, options);

  EXPECT_EQ(read_text_file(folder + "/tokenizer.json"), R"({"model":{"type":"BPE"}})");
  EXPECT_TRUE(file_exists(folder + "/generation_config.json"));
  EXPECT_FALSE(file_exists(folder + "/unrelated.txt"));
  const ModelConfig saved = ModelConfig::load(folder + "/config.json");
  EXPECT_EQ(saved.torch_dtype, "bfloat16");  // what the weights were written in
  EXPECT_EQ(nlohmann::json::parse(saved.source_json)["custom_key"], "kept");
  const SafetensorsSet weights = SafetensorsSet::open(folder);
  EXPECT_EQ(weights.metadata().at("format"), "pt");
  EXPECT_EQ(weights.find("embed_tokens.weight")->dtype, DType::BF16);
  EXPECT_EQ(weights.find("position_ids")->dtype, DType::I64);

  expect_error([&] { save_pretrained(*tiny, config, dtypes, folder, options); }, {folder, "overwrite"});

  // Overwriting a sharded checkpoint with a single file removes the stale shards and index.
  options.overwrite = true;
  options.max_shard_bytes = 300;
  save_pretrained(*tiny, config, dtypes, folder, options);
  EXPECT_TRUE(file_exists(folder + "/model.safetensors.index.json"));
  EXPECT_FALSE(file_exists(folder + "/model.safetensors"));
  options.max_shard_bytes = 1u << 30;
  save_pretrained(*tiny, config, dtypes, folder, options);
  EXPECT_TRUE(file_exists(folder + "/model.safetensors"));
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name.rfind("model-", 0) != 0 && name != "model.safetensors.index.json") << name;
    EXPECT_EQ(name.find(".tmp."), std::string::npos) << name;
  }

  const std::string no_tokenizer = temp_folder("notok");
  options.tokenizer_source = no_tokenizer;
  expect_error([&] { save_pretrained(*tiny, config, dtypes, folder, options); },
               {no_tokenizer, "tokenizer.json, tokenizer.model or vocab.txt"});
}

// ---------------------------------------------------------------------------------------
// The real gemkit::Transformer: save_pretrained -> load_pretrained -> save_pretrained.

namespace {

ModelConfig tiny_config(const std::string& architecture, const std::string& extra = "") {
  const bool bert = architecture.rfind("Bert", 0) == 0;
  return ModelConfig::from_json_text(
      "{\"architectures\":[\"" + architecture + "\"],\"vocab_size\":32,\"hidden_size\":16," +
          "\"intermediate_size\":32,\"num_hidden_layers\":2,\"num_attention_heads\":4," +
          (bert ? "" : "\"num_key_value_heads\":2,") + "\"max_position_embeddings\":16" + extra + "}",
      architecture + " config");
}

}  // namespace

TEST(CheckpointTransformer, RoundTripsEveryArchitecture) {
  const std::vector<ModelConfig> configs = {
      tiny_config("LlamaForCausalLM"),
      tiny_config("LlamaForCausalLM", ",\"tie_word_embeddings\":true"),
      tiny_config("Qwen2ForCausalLM"),
      tiny_config("BertModel"),
      tiny_config("BertForMaskedLM"),
      tiny_config("BertForSequenceClassification", ",\"num_labels\":3"),
  };
  const torch::Tensor input_ids = torch::tensor({{1, 5, 7, 2, 9}}, torch::kInt64);
  for (const ModelConfig& config : configs) {
    SCOPED_TRACE(config.architecture + (config.tie_word_embeddings ? " tied" : ""));
    torch::manual_seed(11);
    Transformer model(config);
    // BF16-exact weights stored as BF16, except the norms kept in F32: a mixed checkpoint.
    TensorDtypes dtypes;
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->named_parameters()) {
        p.value().copy_(torch::randn_like(p.value()).mul(0.1).to(torch::kBFloat16).to(torch::kFloat32));
        dtypes[p.key()] = p.key().find("norm") == std::string::npos ? DType::BF16 : DType::F32;
      }
    }
    const std::string first = temp_folder("tf_first"), second = temp_folder("tf_second");
    SaveOptions options;
    options.overwrite = true;
    options.max_shard_bytes = 4000;  // several shards
    save_pretrained(model, dtypes, first, options);
    EXPECT_TRUE(file_exists(first + "/model.safetensors.index.json"));

    const SafetensorsSet saved = SafetensorsSet::open(first);
    if (config.model_type == "qwen2") {
      EXPECT_NE(saved.find("model.layers.1.self_attn.k_proj.bias"), nullptr);
    }
    if (config.model_type == "llama") {
      EXPECT_NE(saved.find("model.layers.0.mlp.gate_proj.weight"), nullptr);
      EXPECT_EQ(saved.find("lm_head.weight") != nullptr, !config.tie_word_embeddings);
    }
    if (config.architecture == "BertModel") {
      EXPECT_NE(saved.find("encoder.layer.0.attention.self.query.weight"), nullptr);
    }
    if (config.architecture == "BertForMaskedLM") {
      EXPECT_NE(saved.find("bert.encoder.layer.1.output.LayerNorm.weight"), nullptr);
    }

    Pretrained loaded = load_pretrained(first);
    EXPECT_EQ(loaded.config.architecture, config.architecture);
    EXPECT_EQ(loaded.config.head, config.head);
    EXPECT_EQ(loaded.config.num_labels, config.num_labels);
    EXPECT_EQ(loaded.config.torch_dtype, "bfloat16");
    EXPECT_EQ(loaded.dtypes, dtypes);
    expect_same_state(*loaded.model, *model);
    model->eval();
    loaded.model->eval();
    torch::NoGradGuard no_grad;
    const ModelOutput a = model->forward(input_ids), b = loaded.model->forward(input_ids);
    EXPECT_TRUE(torch::equal(a.hidden, b.hidden));
    if (a.logits.defined()) {
      EXPECT_TRUE(torch::equal(a.logits, b.logits));
    }

    save_pretrained(loaded.model, loaded.dtypes, second, options);
    EXPECT_EQ(tensor_bytes(second), tensor_bytes(first));
    EXPECT_EQ(read_text_file(second + "/config.json"), read_text_file(first + "/config.json"));
  }
}

TEST(CheckpointTransformer, IgnorableTensorsLoadAndOthersFail) {
  const ModelConfig config = tiny_config("LlamaForCausalLM", ",\"tie_word_embeddings\":true");
  Transformer model(config);
  const std::string dir = temp_folder("tf_ignorable");
  SaveOptions options;
  options.overwrite = true;
  save_pretrained(model, {}, dir, options);

  // Add the tied output matrix and an old RoPE table, as some HF checkpoints carry them.
  const SafetensorsFile original(dir + "/model.safetensors");
  SafetensorsWriter w;
  for (const TensorView& v : original.tensors()) w.add(v.name, v.dtype, v.shape, v.data, v.nbytes);
  const TensorView& embed = original.at("model.embed_tokens.weight");
  w.add("lm_head.weight", embed.dtype, embed.shape, embed.data, embed.nbytes);
  const std::vector<float> inv_freq(2, 1.f);
  w.add("model.layers.0.self_attn.rotary_emb.inv_freq", DType::F32, {2}, inv_freq.data(), 8);
  w.write(dir + "/patched.safetensors");
  fs::rename(dir + "/patched.safetensors", dir + "/model.safetensors");
  EXPECT_NO_THROW(load_pretrained(dir));

  SafetensorsWriter bad;
  const SafetensorsFile patched(dir + "/model.safetensors");
  for (const TensorView& v : patched.tensors()) bad.add(v.name, v.dtype, v.shape, v.data, v.nbytes);
  bad.add("model.layers.9.mlp.up_proj.weight", DType::F32, {2}, inv_freq.data(), 8);
  bad.write(dir + "/bad.safetensors");
  fs::rename(dir + "/bad.safetensors", dir + "/model.safetensors");
  try {
    load_pretrained(dir);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(dir + "/model.safetensors: tensor model.layers.9.mlp.up_proj.weight: unexpected"),
              std::string::npos)
        << message;
  }
  expect_error([&] { load_pretrained(dir + "/missing"); }, {dir + "/missing", "checkpoint folder"});
}
