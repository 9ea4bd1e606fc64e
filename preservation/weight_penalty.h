// EWC, online EWC and L2-SP (docs/design/gem-method.md §4): one quadratic penalty that holds weights
// near an anchor, each parameter k weighted by an importance F_k:
//
//   penalty = 1/2 * sum_k F_k * (theta_k - theta*_k)^2
//
//  - EWC: theta* = the base weights, F = their diagonal Fisher on general data (fisher.h).
//  - L2-SP: the same with F = 1 (a baseline: every weight equally important).
//  - Online EWC, for domains learnt one after another: after each domain, consolidate():
//    F <- gamma * F + F_new and theta* <- the weights reached.
//  - Adapters: the base weights do not move, the effective weight W + delta does, so the same
//    penalty applies to delta = W_eff - theta*: penalty_of_deltas(lora_weight_deltas(adapters)).
//
// The anchor is a copy (float32, or float64 for float64 parameters) of the weights it was made
// from, so later in-place changes (training, LoRA merges) cannot drag it along. Hand the
// penalty only the parameters it is meant to cover: any subset of the anchored names works,
// a name it does not know is an error (a renamed or different model would otherwise be
// penalised against nothing, silently).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "model/lora.h"
#include "model/state_dict.h"  // NamedParams

namespace gemkit {

class WeightAnchor {
 public:
  // theta* = params (copied), F = 1 (stored as a scalar, not a tensor of ones).
  static WeightAnchor l2sp(const NamedParams& params);
  // theta* = params (copied), F = fisher[name] for each of them (the Fisher may hold more
  // names; each given parameter must be in it, with its shape and values >= 0).
  static WeightAnchor ewc(const NamedParams& params, const std::map<std::string, torch::Tensor>& fisher);

  // 1/2 * sum over the given tensors of F (current - theta*)^2: a float32 (float64) scalar on
  // the tensors' device with gradients into `current`. Throws gemkit::Error for an empty list,
  // a name without an anchor or a shape that differs from the anchor's.
  torch::Tensor penalty(const NamedParams& current) const;
  // 1/2 * sum over the given tensors of F delta^2, delta the effective change of the weight
  // named (for adapters, "<module path>.weight" -> scale * B A; see lora_weight_deltas).
  // Same rules and errors as penalty().
  torch::Tensor penalty_of_deltas(const NamedParams& deltas) const;

  // Online EWC after a domain: for every anchored name, F <- gamma * F + new_fisher[name] and
  // theta* <- current[name]. `current` must hold every anchored name and nothing else;
  // `new_fisher` every anchored name (it may hold more). gamma >= 0 (1 = plain sum over
  // domains, < 1 forgets old domains' importance geometrically).
  void consolidate(const NamedParams& current, const std::map<std::string, torch::Tensor>& new_fisher, double gamma);

  // safetensors: "anchor.<name>" and "importance.<name>" per parameter, metadata format
  // "gemkit-weight-anchor-v1"; written atomically. load() checks the pairing, shapes and
  // dtypes and returns tensors on the CPU (see to()).
  void save(const std::string& path) const;
  static WeightAnchor load(const std::string& path);
  void to(const torch::Device& device);

  std::vector<std::string> names() const;
  const torch::Tensor& anchor(const std::string& name) const;      // theta*; throws for unknown names
  const torch::Tensor& importance(const std::string& name) const;  // F ([] for L2-SP's 1)

 private:
  struct Entry {
    torch::Tensor anchor;
    torch::Tensor importance;
  };
  const Entry& entry_for(const std::string& name, const torch::Tensor& t, const char* where) const;
  static WeightAnchor make(const NamedParams& params, const std::map<std::string, torch::Tensor>* fisher);

  std::map<std::string, Entry> entries_;
};

// A module's named_parameters() as NamedParams (for a Transformer: the Hugging Face names).
NamedParams named_params(const torch::nn::Module& module);

// For each adapted layer, "<module path>.weight" -> scale * B A [out, in] in float32, WITH
// gradients into A and B (LoraLayer::delta_weight() is the no-grad form used for merging).
NamedParams lora_weight_deltas(const LoraAdapters& adapters);

}  // namespace gemkit
