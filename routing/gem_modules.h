// The GEM routing modules of one model, together: the Dynamic Token Router (routing/
// token_router.h) and SCAR (routing/scar.h), their configuration as a checkpoint file, and
// their figures for the metrics log.
//
// A training checkpoint of a routed model is a normal Hugging Face folder (the base weights)
// plus:
//   gem.json            what is attached: {"format": "gemkit-gem", "version": 1, "dtr": {...},
//                       "scar": {...}} (either may be absent)
//   extra.safetensors   the modules' tensors, named "dtr.routers.<i>.weight|bias",
//                       "scar.routers.<i>.query|keys", "scar.experts.<domain>.<path>.lora_A|B.weight"
// load_gem_modules() puts them back on a loaded base model, which is how `gemkit eval` and
// `gemkit generate` run a routed checkpoint.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "routing/scar.h"
#include "routing/token_router.h"

namespace gemkit {

inline constexpr const char* kGemConfigFile = "gem.json";

struct GemConfig {
  bool dtr = false;
  std::vector<int64_t> dtr_blocks;  // empty: default_routed_blocks()
  TokenRouterOptions dtr_options;
  bool scar = false;
  ScarOptions scar_options;
  bool any() const { return dtr || scar; }
};

nlohmann::json gem_config_to_json(const GemConfig& config);
// Throws gemkit::Error naming `where` and the field for a malformed document.
GemConfig gem_config_from_json(const nlohmann::json& j, const std::string& where);

class GemModules {
 public:
  // Attaches what `config` enables to `model` (DTR wraps blocks, SCAR hooks linears).
  GemModules(Transformer model, const GemConfig& config);
  ~GemModules();  // puts the base blocks back and removes the hooks
  GemModules(const GemModules&) = delete;
  GemModules& operator=(const GemModules&) = delete;

  const GemConfig& config() const { return config_; }
  TokenRouters* dtr() { return dtr_ ? &dtr_ : nullptr; }
  Scar* scar() { return scar_.get(); }

  // Every tensor, prefixed "dtr." / "scar." (shared, not copied).
  std::map<std::string, torch::Tensor> named_parameters() const;
  // Copies the "dtr." and "scar." tensors of `tensors` in; other names are ignored. Strict
  // about the modules' own names and shapes (error naming `where`).
  void load_named_parameters(const std::map<std::string, torch::Tensor>& tensors, const std::string& where);
  // Sequential domains: when `checkpoint` holds gem.json (an earlier stage's routed model),
  // its SCAR routers and experts come back into this run's SCAR (Scar::load_earlier_stage),
  // and its token routers when both attach them to the same blocks. The expert layout (blocks,
  // target modules, rank, router width, general expert) must match: error naming the field.
  // Returns the earlier stage's expert names (empty when `checkpoint` is not routed).
  std::vector<std::string> load_earlier_stage(const std::string& checkpoint);
  void save_config(const std::string& folder) const;  // folder/gem.json
  // gem.json and the tensors as folder/extra.safetensors (f32), each written atomically: what
  // load_gem_modules() reads back (the trainer writes extra.safetensors with its other modules).
  void save(const std::string& folder) const;

  // SCAR: the general expert's router logit bias (Scar::set_general_bias), also in config()
  // (so save_config() and the reports carry it). Throws without SCAR.
  void set_scar_general_bias(double bias);

  // DTR: capacity annealing (training step).
  void set_step(int64_t step);
  // Figures over every forward since the last call (then reset): "dtr/capacity" (the current
  // training capacity), "dtr/realised_capacity", "dtr/predictor_accuracy" (threshold rule vs
  // top-k membership), "dtr/flops_saved" (share of the model's matmul FLOPs per token
  // skipped, attention's T^2 term left out), "scar/experts_per_token", "scar/entropy",
  // "scar/load/<expert>" (share of routing decisions whose first choice it is),
  // "scar/general_sequences" (share of rows whose mean routing distribution peaks at general).
  std::map<std::string, double> metrics();

 private:
  Transformer model_;
  GemConfig config_;
  TokenRouters dtr_{nullptr};
  std::unique_ptr<Scar> scar_;
};

// When `checkpoint` holds gem.json: attaches the modules it describes to `model` and loads
// their tensors from the checkpoint's extra.safetensors. nullptr when there is no gem.json.
std::unique_ptr<GemModules> load_gem_modules(Transformer model, const std::string& checkpoint);

}  // namespace gemkit
