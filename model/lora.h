// LoRA: low-rank adapters on the linear layers of a frozen Transformer, PEFT-compatible.
//
// For a targeted layer y = x W^T + b, LoRA adds a trainable low-rank update:
//   y' = y + scale * dropout(x) A^T B^T,   A [r, in], B [out, r]
// with scale = alpha / r (or alpha / sqrt(r) with rsLoRA). It is a gemkit::LinearHook
// (adjust_output), so no model code changes and the model's named_parameters() stay the
// Hugging Face names. The effective weight is W + scale * B A (docs/design/formats.md, PEFT section).
//
// Initialisation as PEFT: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
// B = 0, so a freshly attached adapter leaves the model's outputs unchanged. Both draws
// (init and dropout masks) come from per-layer generators seeded from LoraOptions::seed and
// the layer's index, so runs are reproducible whatever else uses the global RNG.
//
// Target modules (LoraOptions::target_modules), matched against every linear layer's module
// path (Transformer::linear_paths(), e.g. "model.layers.0.self_attn.q_proj"):
//  - a plain name ("q_proj", "self_attn.v_proj") matches a path equal to it or ending in
//    "." + name -- PEFT's rule for a list of target modules;
//  - "re:<regex>" matches when the regex matches the WHOLE path (std::regex ECMAScript) --
//    PEFT's rule for a string target_modules (re.fullmatch), e.g. "re:.*layers\.[01]\..*_proj";
//  - "all-linear" matches every linear layer except the output heads (lm_head, score,
//    classifier, cls.predictions.*) -- PEFT's "all-linear".
// A pattern that matches no layer is an error (a typo would silently train nothing).
//
// Ownership (model/linear.h): the Linear does not register hooks, so LoraAdapters owns the
// adapter tensors. Hand parameters() to the optimizer. Attach after moving the model to its
// device (adapters are created on each weight's device and in its dtype), or call to().
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/linear.h"
#include "model/transformer.h"

namespace gemkit {

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16;
  bool rslora = false;  // scale = alpha / sqrt(rank) instead of alpha / rank
  double dropout = 0;   // on the adapter input, training mode only (PEFT's lora_dropout)
  std::vector<std::string> target_modules{"q_proj", "v_proj"};
  uint64_t seed = 0;
  bool freeze_base = true;  // set requires_grad=false on every base parameter

  double scale() const;  // alpha / r or alpha / sqrt(r)
};

// True when `path` is selected by one target-module pattern (rules above). Throws
// gemkit::Error for an invalid "re:" regex.
bool lora_target_matches(const std::string& pattern, const std::string& path);
// Module paths of `model` selected by `target_modules`, in the model's order. Throws
// gemkit::Error for an empty list or a pattern that matches nothing.
std::vector<std::string> lora_select_modules(const Transformer& model,
                                             const std::vector<std::string>& target_modules);

// One adapter on one Linear. Public so that SCAR's expert bank can reuse the low-rank math.
class LoraLayer : public LinearHook {
 public:
  // Creates A (kaiming-uniform from `generator_seed`) and B (zeros) for `linear`, on its
  // weight's device and dtype, requires_grad=true.
  LoraLayer(LinearImpl* linear, int64_t rank, double scale, double dropout, uint64_t generator_seed);

  torch::Tensor adjust_output(const torch::Tensor& x, const torch::Tensor& y) override;

  // scale * x A^T B^T without dropout (the adapter's contribution for input x).
  torch::Tensor delta(const torch::Tensor& x) const;
  // scale * B A [out, in], computed in float32 (merge arithmetic), returned in float32.
  torch::Tensor delta_weight() const;

  torch::Tensor A;  // lora_A.weight [rank, in]
  torch::Tensor B;  // lora_B.weight [out, rank]
  double scale;
  double dropout;
  // When false (merged, or switched off for a teacher pass), adjust_output returns y.
  bool active = true;

  // The dropout generator's state (CPU generator bytes): a training checkpoint saves it so
  // that a resumed run draws the same dropout masks as an uninterrupted one.
  torch::Tensor generator_state() const;
  void set_generator_state(const torch::Tensor& state);

 private:
  LinearImpl* linear_;  // the layer this hook sits on (for its training flag); not owned
  torch::Generator generator_;
};

class LoraAdapters {
 public:
  LoraAdapters() = default;
  // Move-only: the object tracks the merged state of the hooks it owns; two copies would
  // each merge the same delta into the weights.
  LoraAdapters(LoraAdapters&&) = default;
  LoraAdapters& operator=(LoraAdapters&&) = default;
  LoraAdapters(const LoraAdapters&) = delete;
  LoraAdapters& operator=(const LoraAdapters&) = delete;
  // Selects the layers, creates and hooks one LoraLayer each, and (freeze_base) freezes
  // every base parameter. Throws gemkit::Error for invalid options, a pattern that matches
  // nothing, or a layer that already carries a LoRA adapter.
  static LoraAdapters attach(Transformer& model, const LoraOptions& options);

  const LoraOptions& options() const { return options_; }
  double scale() const { return options_.scale(); }
  // Adapted module paths, in the model's order.
  std::vector<std::string> module_paths() const;
  const LoraLayer& layer(const std::string& path) const;  // throws for an unknown path
  LoraLayer& layer(const std::string& path);

  // Trainable tensors: A then B of each layer, in module order.
  std::vector<torch::Tensor> parameters() const;
  // PEFT names: base_model.model.<path>.lora_A.weight / .lora_B.weight -> tensor (shared,
  // not copied).
  std::map<std::string, torch::Tensor> named_parameters() const;
  // Copies tensors named as in named_parameters() into the adapters. Strict: a missing or
  // unexpected name or a wrong shape is a gemkit::Error naming `where` and the tensor;
  // nothing is copied unless everything matches.
  void load_named_parameters(const std::map<std::string, torch::Tensor>& tensors,
                             const std::string& where);

  // W += scale * B A (in float32) and switch the hooks off; outputs are unchanged up to
  // rounding. unmerge() subtracts the same product and switches them back on. Both are
  // no-ops when already in that state.
  void merge();
  void unmerge();
  bool merged() const { return merged_; }
  // Switches every adapter off (the base model alone, e.g. the AKP teacher) or back on.
  // Has no effect on merged weights.
  void set_enabled(bool enabled);
  bool enabled() const { return enabled_; }
  // Removes the hooks from the model; the adapters stop affecting it. Merged weights stay
  // merged (PEFT's merge_and_unload). The base parameters' requires_grad is not restored.
  void detach();
  bool attached() const { return attached_; }

  // Dropout generator states by module path (LoraLayer::generator_state), and back. Strict:
  // a missing or unexpected path is a gemkit::Error naming `where`; nothing is set unless
  // every path matches.
  std::map<std::string, torch::Tensor> generator_states() const;
  void set_generator_states(const std::map<std::string, torch::Tensor>& states, const std::string& where);

  // Moves the adapter tensors in place (the same tensor objects: an optimizer built on
  // parameters() keeps working).
  void to(const torch::Device& device);

 private:
  struct Entry {
    std::string path;
    Linear linear;
    std::shared_ptr<LoraLayer> hook;
  };
  LoraOptions options_;
  std::vector<Entry> entries_;
  bool merged_ = false;
  bool enabled_ = true;
  bool attached_ = false;
};

}  // namespace gemkit
