// gemkit model info | init: describe a checkpoint folder; create a randomly initialised one.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "cli/commands.h"
#include "cli/recipe_args.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/torch_compat.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "import/model_registry.h"
#include "model/checkpoint.h"
#include "tokenizers/tokenizer.h"
#include "train/model_init.h"

namespace gemkit::cli {
namespace {

namespace fs = std::filesystem;

// 1234567 -> "1,234,567"
std::string with_commas(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

// 3456789 -> "3.46M"
std::string short_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

void field(const char* name, const std::string& value) {
  std::printf("%-16s %s\n", (std::string(name) + ":").c_str(), value.c_str());
}

// ---------------------------------------------------------------------------------------------
// model info: config.json and the safetensors headers only (no torch, no weights read).
void info(const std::string& folder) {
  if (!is_directory(folder)) fail(folder, "not a folder (expected a checkpoint folder with config.json)");
  const std::string config_path = (fs::path(folder) / "config.json").string();
  if (!file_exists(config_path)) fail(config_path, "missing (a checkpoint folder needs config.json)");
  const ModelConfig c = ModelConfig::load(config_path);
  const SafetensorsSet weights = SafetensorsSet::open(folder);

  uint64_t params = 0;
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // dtype -> tensors, elements
  for (const auto& [name, view] : weights.tensors()) {
    params += uint64_t(view->numel());
    auto& d = by_dtype[dtype_name(view->dtype)];
    d.first += 1;
    d.second += uint64_t(view->numel());
  }
  uint64_t bytes = 0;
  std::string files;
  for (const std::string& f : weights.files()) {
    bytes += uint64_t(fs::file_size(f));
    files += (files.empty() ? "" : ", ") + fs::path(f).filename().string();
  }
  std::string dtypes;
  for (const auto& [name, d] : by_dtype)
    dtypes += (dtypes.empty() ? "" : ", ") + name + " (" + std::to_string(d.first) + " tensors, " +
              short_count(double(d.second)) + " values)";
  std::string tokenizer;
  for (const std::string& f : kTokenizerFiles)
    if (file_exists((fs::path(folder) / f).string())) tokenizer += (tokenizer.empty() ? "" : ", ") + f;

  field("model", folder);
  field("architecture", c.architecture + " (model_type " + c.model_type + ")");
  field("family", family_name(c.family));
  field("head", head_name(c.head) + (c.head == Head::SequenceClassification
                                         ? " (" + std::to_string(c.num_labels) + " labels)"
                                         : std::string()));
  field("layers", std::to_string(c.num_hidden_layers));
  field("hidden", std::to_string(c.hidden_size));
  field("intermediate", std::to_string(c.intermediate_size));
  field("heads", std::to_string(c.num_attention_heads) + " (head_dim " + std::to_string(c.head_dim()) + ")");
  field("kv heads", std::to_string(c.num_key_value_heads));
  field("vocab", std::to_string(c.vocab_size));
  field("max positions", std::to_string(c.max_position_embeddings));
  if (c.family == Family::Decoder) {
    char rope[160];
    std::snprintf(rope, sizeof rope, "theta %g, scaling %s", c.rope_theta, c.rope_scaling.type.c_str());
    std::string text = rope;
    if (c.rope_scaling.type != "default") {
      std::snprintf(rope, sizeof rope, " (factor %g", c.rope_scaling.factor);
      text += rope;
      if (c.rope_scaling.type == "llama3") {
        std::snprintf(rope, sizeof rope, ", low %g, high %g, original context %lld", c.rope_scaling.low_freq_factor,
                      c.rope_scaling.high_freq_factor, (long long)c.rope_scaling.original_max_position_embeddings);
        text += rope;
      }
      text += ")";
    }
    field("rope", text);
  }
  field("tied embeddings", c.tie_word_embeddings ? "yes" : "no");
  field("parameters", with_commas(params) + " (" + short_count(double(params)) + ")");
  field("tensors", std::to_string(weights.tensors().size()));
  field("dtypes", dtypes);
  field("config dtype", c.torch_dtype);
  field("weight files", files);
  field("file size", megabytes(bytes) + " (" + with_commas(bytes) + " bytes)");
  field("tokenizer", tokenizer.empty() ? "none" : tokenizer);
}

// ---------------------------------------------------------------------------------------------
// model init: config from the recipe's model.init keys, random weights, the tokenizer copied.

// The folder holding the tokenizer files: TOK itself, or the folder of a tokenizer file.
std::string tokenizer_folder(const std::string& tok) {
  if (is_directory(tok)) return tok;
  if (!file_exists(tok)) fail(tok, "tokenizer not found (expected a folder or a tokenizer file)");
  fs::path parent = fs::path(tok).parent_path();
  return parent.empty() ? "." : parent.string();
}

void init(const Recipe& r, const std::string& tokenizer_path, const std::string& out, bool overwrite) {
  const std::string tok_folder = tokenizer_folder(tokenizer_path);
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tokenizer_path);
  const ModelConfig config = model_init_config(r, *tok);

  torch::manual_seed(uint64_t(r.get_int("model.init.seed")));
  Transformer model(config);
  SaveOptions options;
  options.tokenizer_source = tok_folder;
  options.overwrite = overwrite;
  save_pretrained(model, TensorDtypes{}, out, options);
  r.save((fs::path(out) / "resolved_recipe.toml").string());

  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::printf("wrote %s: %s, %s parameters, random weights (seed %lld), tokenizer from %s\n", out.c_str(),
              config.architecture.c_str(), short_count(double(params)).c_str(),
              static_cast<long long>(r.get_int("model.init.seed")), tok_folder.c_str());
}

}  // namespace

void add_model_commands(CLI::App& app) {
  CLI::App* model = app.add_subcommand("model", "inspect and create checkpoint folders");
  model->require_subcommand(1);

  auto info_path = std::make_shared<std::string>();
  CLI::App* info_cmd = model->add_subcommand("info", "architecture, sizes, parameters and dtypes of a checkpoint");
  info_cmd->add_option("path", *info_path, "checkpoint folder (config.json + model.safetensors), or models:NAME (gemkit models ls)")->required();
  info_cmd->callback([info_path] { info(resolve_model_path(*info_path, default_cache_dir())); });

  struct InitArgs {
    std::string tokenizer, out;
    bool overwrite = false;
    std::unique_ptr<RecipeArgs> recipe;
  };
  auto a = std::make_shared<InitArgs>();
  CLI::App* init_cmd = model->add_subcommand(
      "init", "create a randomly initialised checkpoint folder (Hugging Face layout) with a tokenizer");
  a->recipe = std::make_unique<RecipeArgs>(init_cmd);
  init_cmd->add_option("--tokenizer,-t", a->tokenizer, "tokenizer folder or file; its files are copied")->required();
  init_cmd->add_option("--out,-o", a->out, "output checkpoint folder")->required();
  init_cmd->add_flag("--overwrite", a->overwrite, "replace a checkpoint already in --out");
  a->recipe->flag("--architecture", "model.init.architecture", "Hugging Face architecture");
  a->recipe->flag("--hidden-size", "model.init.hidden_size", "model width");
  a->recipe->flag("--intermediate-size", "model.init.intermediate_size", "MLP width");
  a->recipe->flag("--layers", "model.init.num_hidden_layers", "transformer blocks");
  a->recipe->flag("--heads", "model.init.num_attention_heads", "attention heads");
  a->recipe->flag("--kv-heads", "model.init.num_key_value_heads", "key/value heads");
  a->recipe->flag("--vocab-size", "model.init.vocab_size", "vocabulary size (default: the tokenizer's)");
  a->recipe->flag("--seed", "model.init.seed", "initialisation seed");
  init_cmd->callback([a] { init(a->recipe->resolve(), a->tokenizer, a->out, a->overwrite); });
}

}  // namespace gemkit::cli
