// Extra loss terms: anything added to the head's loss (GEM router load balance and z-loss,
// distillation, EWC). The trainer computes loss = task_loss + sum_i weight_i * fn_i(context)
// for every micro-batch and logs each term's unweighted value per step (metrics.jsonl key
// "loss/<name>").
//
//   trainer.add_loss_term({"router_z", 1e-3, [&](const StepContext& c) { return router.z_loss(); }});
//
// A term returns a scalar tensor on the model's device. It may return an undefined tensor to
// say "nothing this micro-batch" (counted as 0). The weight is a plain field so that adaptive
// schemes (AKP's lambda updates) can change it between steps through Trainer::loss_term(name).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include "data/batch.h"
#include "model/batch_tensors.h"
#include "model/transformer.h"

namespace gemkit {

struct StepContext {
  Transformer& model;
  const ModelOutput& output;     // the forward pass of this micro-batch
  const TokenBatch& batch;       // as the loader produced it
  const BatchTensors& tensors;   // the same, on the model's device
  int64_t step;                  // optimizer step being computed (0-based)
  int64_t micro_step;            // index of the micro-batch within the step
  std::mt19937_64& rng;          // the trainer's RNG: saved in checkpoints, so resumes replay it
};

struct LossTerm {
  std::string name;
  double weight = 1.0;
  std::function<torch::Tensor(const StepContext&)> fn;
  // Whether fn reads StepContext::output.logits (distillation does). While any term does, the
  // trainer computes full logits; otherwise it may leave them undefined and take the head's
  // loss in chunks (TrainerOptions::loss_chunk_tokens).
  bool needs_logits = true;
};

}  // namespace gemkit
