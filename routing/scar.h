// Sparse Cross-Attention Router (SCAR, docs/design/gem-method.md §3): a bank of low-rank domain
// experts on the linear layers of the routed blocks, and a router per block that sends each
// token to a variable number of them (routing/expert_router.h).
//
// Experts: expert 0 is "general" (optional, on by default): no adapter, the untouched base path.
// The others are domain experts, one LoRA-style adapter (model/lora.h LoraLayer: A [r, in],
// B [out, r], scale alpha / r, B = 0 at start) per targeted linear layer of each routed block.
//
// Where a token is routed. A decoder block has two groups of linears, each fed by one normalised
// hidden state: attention (q/k/v_proj read input_layernorm(h); o_proj follows) and MLP
// (gate/up_proj read post_attention_layernorm(h'); down_proj follows). Each group routes each
// token once, from the group's input (the block's own RMSNorm output, so "norm(h_i)" of the
// spec), and every targeted linear of the group uses that decision. Routing per group rather
// than once per block keeps every decision aligned with the tokens the linear actually sees,
// whatever wraps the block (a token router may run attention on a subset and the MLP on all
// tokens) and with the KV cache (decisions are per token, so decoding one token works).
// The router's parameters are shared by the two groups of a block.
//
// Compute: per domain expert, gather the rows routed to it, apply its adapter to those rows
// only, scale by the gate and scatter-add into the layer's output: y += g_e * scale * B_e A_e x.
//
// Losses (take_losses), over the decisions of the last forward pass:
//  - load balance (Switch form): E * sum_e f_e * P_e, f_e the share of tokens whose first choice
//    is e, P_e the mean router probability of e;
//  - router z-loss: mean of logsumexp(z)^2;
//  - domain supervision: CE(mean_i p_i, domain of the sequence) for rows with a known domain
//    (general / replay rows are labelled "general"), class-balanced over the micro-batch: every
//    domain present weighs the same, so the replay share does not set the router's prior.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "model/transformer.h"
#include "routing/expert_router.h"

namespace gemkit {

class LoraLayer;

inline constexpr const char* kGeneralExpert = "general";

struct ScarOptions {
  std::vector<std::string> experts;  // domain experts by domain name ("law", ...)
  bool general_expert = true;        // expert 0 "general": the base path alone
  std::vector<int64_t> blocks;       // routed decoder blocks; empty: every block
  // Linear names within a block (the last component of the module path).
  std::vector<std::string> target_modules{"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
  int64_t rank = 8;
  double alpha = 16;  // scale = alpha / rank
  ExpertRouterOptions router;
  uint64_t seed = 0;  // router and adapter initialisation
};

// Throws gemkit::Error "ScarOptions.<field>: ..." for invalid options.
void validate(const ScarOptions& options);

// Accumulated over every routing decision (token x group x block) since reset_stats().
struct ScarStats {
  int64_t decisions = 0;
  std::vector<int64_t> first_choice;  // per expert: decisions whose most probable expert it is
  double experts_sum = 0;             // chosen experts, summed over decisions
  double entropy_sum = 0;             // routing entropy (nats), summed
  // Sequence level: per (row, decision) covering a whole row, whether the row's mean routing
  // distribution (over its positions, padding included) peaks at expert 0 ("general").
  int64_t rows = 0, rows_first_expert = 0;
  double row_share_first_expert() const { return rows ? double(rows_first_expert) / double(rows) : 0.0; }
  double experts_per_token() const { return decisions ? experts_sum / double(decisions) : 0.0; }
  double entropy() const { return decisions ? entropy_sum / double(decisions) : 0.0; }
  double load(size_t e) const { return decisions ? double(first_choice.at(e)) / double(decisions) : 0.0; }
};

struct ScarLosses {
  torch::Tensor balance, z, supervision;  // scalars; supervision is 0 without labelled rows
  int64_t supervised_rows = 0;
  double domain_accuracy = 0;  // rows whose mean routing distribution peaks at their domain
};

class Scar {
 public:
  // Creates the routers and experts on `model`'s device and dtype and installs the hooks.
  // Throws gemkit::Error for invalid options, an encoder model, a block out of range or a
  // target that names no linear of a decoder block.
  Scar(Transformer model, ScarOptions options);
  ~Scar();  // removes the hooks
  Scar(const Scar&) = delete;
  Scar& operator=(const Scar&) = delete;

  const ScarOptions& options() const;
  // "general" (when enabled) then options.experts, in expert-index order.
  const std::vector<std::string>& expert_names() const;
  int64_t expert_index(const std::string& name) const;  // -1 when absent
  int64_t num_experts() const;

  // Trainable tensors by name: "routers.<block>.query", "routers.<block>.keys",
  // "experts.<expert>.<module path>.lora_A.weight" / ".lora_B.weight" (shared, not copied).
  std::map<std::string, torch::Tensor> named_parameters() const;
  // Strict: a missing or unexpected name or a wrong shape is an error naming `where`; nothing
  // is copied unless everything matches.
  void load_named_parameters(const std::map<std::string, torch::Tensor>& tensors, const std::string& where);
  // Sequential domains: the tensors of an earlier stage's SCAR, whose experts were `earlier`
  // (its expert_names()), into this one, which has those experts and new ones. Router queries
  // and the earlier experts' adapters load by name, each earlier key row into the row of the
  // expert of the same name; the new experts keep their initialisation. Strict otherwise (an
  // earlier expert missing here, a missing tensor, a wrong shape: error naming `where`).
  void load_earlier_stage(const std::map<std::string, torch::Tensor>& tensors, const std::vector<std::string>& earlier,
                          const std::string& where);
  // The named experts stop learning: their adapters get no gradient and the gradient of their
  // router key rows is zeroed (the shared query still trains, so routing can still move).
  void freeze_experts(const std::vector<std::string>& names);
  // Puts the frozen key rows back as freeze_experts found them: called after each optimizer
  // step, since the key tensors as a whole still train (AdamW's weight decay would shrink them).
  void restore_frozen_keys();
  // The routers' query projections stop learning too (shared by every expert: with them frozen
  // an earlier domain's routing changes only through the keys that still train).
  void freeze_router_queries();
  // Names (as in named_parameters) of the frozen tensors: the frozen experts' adapters and, after
  // freeze_router_queries, the queries.
  std::set<std::string> frozen_parameter_names() const;

  // Routing of the last forward pass: the losses (see above). row_expert [B] int64: the expert
  // index of each row's domain, -1 when unknown; undefined: no supervision. valid [B, T] bool
  // masks padding in decisions that cover the whole sequence; undefined: all real.
  ScarLosses losses(const torch::Tensor& row_expert, const torch::Tensor& valid) const;
  // [B, T] probability that each token is general (mean over the last forward's decisions that
  // cover the whole sequence), detached; undefined without a general expert or such decisions.
  torch::Tensor general_probability(int64_t rows, int64_t seq_len) const;

  // Inference: the general expert's logit bias (ExpertRouterOptions::general_bias) of every
  // router; options() reports it. Throws without a general expert.
  void set_general_bias(double bias);
  // Inference with a chosen domain: every token goes to expert e alone (-1: routed).
  void set_forced_expert(int64_t e);

  const ScarStats& stats() const;
  void reset_stats();

  // Effective weight change of every expert adapter, scale * B A [out, in], differentiable,
  // as ("<module path>.weight", delta) pairs (one per expert and layer): for penalties on the
  // change of the effective weights (EWC, L2-SP) and for merging one expert into the base.
  std::vector<std::pair<std::string, torch::Tensor>> weight_deltas(const std::string& expert = "") const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace gemkit
