// A training method: anything that changes how a `gemkit train` run trains (LoRA adapters,
// GEM's routers, knowledge preservation, quantization-aware training, and the baselines to
// come). The trainer (train/trainer.h) knows none of them; each method plugs into it through
// the trainer's own extension points (added parameters, loss terms, step hooks, checkpoint
// hooks), and `gemkit train` is a loop over the methods a recipe enables:
//
//   MethodContext context{recipe, model, ...};
//   std::vector<std::unique_ptr<Method>> methods = enabled_methods(recipe);  // methods/methods.h
//   for (auto& m : methods) { m->attach(trainer, context); context.attached.push_back(m.get()); }
//   trainer.run();
//   for (auto& m : methods) m->finish(context);                                // rank 0
//
// A method reads its recipe section (lora.*, dtr.* / scar.*, akp.*, quant.*) in attach; the
// defaults of those keys are the defaults of the options structs of the modules it drives
// (train/recipe.cpp takes them from there). Methods attach in a fixed order (methods.cpp), and
// a later method may use what an earlier one offers through the queries below (AKP penalises
// the weight changes of adapters attached before it, and distils with SCAR's P(general)).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/source_domains.h"
#include "model/state_dict.h"
#include "model/transformer.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace gemkit {

class Method;

// What a method may read while it attaches and finishes.
struct MethodContext {
  explicit MethodContext(const Recipe& resolved) : recipe(resolved) {}

  const Recipe& recipe;                  // resolved
  Transformer model{nullptr};            // on its device, base weights loaded
  TrainMode mode = TrainMode::Full;      // train.mode
  SourceDomains domains;                 // of train.data, by source
  LoaderOptions loader;                  // how held-out shards are cut into batches
  std::string run_dir;
  std::string base_model;                // model.path (or the tokenizer folder when pretraining)
  std::string tokenizer_source;          // folder whose tokenizer files checkpoints carry
  std::vector<const Method*> attached;   // methods attached before this one, in order
};

class Method {
 public:
  virtual ~Method() = default;
  virtual const char* name() const = 0;

  // Adds the method's modules and parameters, loss terms, step hooks and checkpoint files to
  // the trainer, before the first step (and before a resume restores checkpoints).
  virtual void attach(Trainer& trainer, MethodContext& context) = 0;
  // After the last step, on rank 0 only: the method's final files in context.run_dir.
  virtual void finish(const MethodContext& context) {}

  // Parameters the method added to the model (the trainable count `gemkit train` prints).
  virtual int64_t added_parameters() const { return 0; }
  // The effective change of base weights the method's adapters make, by base weight name
  // (LoRA: scale * B A; SCAR: each expert's). Penalties on a frozen base look at these.
  virtual NamedParams weight_deltas() const { return {}; }
  // [rows, seq_len] probability that each token of the latest forward pass is general text;
  // undefined when the method does not route by domain.
  virtual bool routes_general_tokens() const { return false; }
  virtual torch::Tensor general_probability(int64_t rows, int64_t seq_len) const { return {}; }
};

}  // namespace gemkit
