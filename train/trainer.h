// The training loop: AdamW with a schedule, gradient accumulation, clipping, budgets in steps,
// tokens or epochs, non-finite and outlier step skipping, extra loss terms, validation,
// checkpoints with exact resume, and per-step metrics.
//
//   Trainer trainer(model, stream, options);         // options.run_dir gets everything
//   trainer.add_loss_term({"router_z", 1e-3, fn});    // optional (GEM losses)
//   trainer.set_validation(sequential_batches(...));  // optional: val_loss, best checkpoint
//   trainer.resume();                                  // continue from RUN/latest if present
//   trainer.run();                                     // until the budget is spent
//
// One optimizer step, in order (Trainer::step reads the same way):
//   1. lr = schedule(step)
//   2. take grad_accum micro-batches; count their loss targets (N in all)
//   3. per micro-batch: forward, loss_i = head loss + sum weight * term; backward of
//      loss_i * n_i / N, so k micro-batches of b rows give the gradient of one batch of k*b
//   4. average gradients over data-parallel ranks (train/distributed.h)
//   5. global gradient norm; a non-finite loss or norm skips the update (and enough in a row
//      stop the run); so does an outlier loss or norm by rolling z-score, when enabled
//   6. clip to max_grad_norm, AdamW update
//   7. metrics line, console, validation and checkpoint when due
//
// Trainable parameters come from the mode: Full trains every model parameter plus the added
// ones; FrozenBase sets requires_grad false on the model's own parameters and trains only the
// added ones (adapters, routers). Lora is FrozenBase for the trainer: the LoRA method attaches
// the adapters and adds their parameters.
//
// The trainer knows no method. LoRA, GEM, AKP and QAT (methods/method.h) plug in through the
// set-up calls below: add_parameters, add_loss_term, add_step_hook, add_checkpoint_hook.
//
// Data parallel (options.distributed enabled, W ranks): every rank reads the SAME stream, whose
// batches are the combined batch of B rows, and trains on its own contiguous rows
// [r*B/W, (r+1)*B/W) (B must be divisible by W). The loader position is therefore identical on
// every rank and rank 0's checkpoint serves all of them; step 3's loss weights use the global
// target counts of the combined micro-batches, so the averaged gradient is the combined batch's.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "data/batch.h"
#include "model/transformer.h"
#include "train/batch_stream.h"
#include "train/loss_terms.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace gemkit {

class Distributed;
class Recipe;

enum class TrainMode { Full, FrozenBase, Lora };
// "full" | "frozen" | "lora"
TrainMode parse_train_mode(const std::string& name, const std::string& where);

// Files of the caller's own in each checkpoint (e.g. LoRA: the PEFT adapter folder and the
// dropout generators). save(folder) runs while the checkpoint is written, inside its temporary
// folder, so the files are part of the atomic checkpoint; restore(folder) runs at resume, after
// the weights. Only rank 0 saves; every rank restores.
struct CheckpointHook {
  std::function<void(const std::string& folder)> save;
  std::function<void(const std::string& folder)> restore;
};

// Code that runs at every optimizer step (GEM: capacity annealing, router statistics, the
// forgetting-budget controller). `before` runs before the step's forward passes; `after` runs
// after the update, and the figures it returns go on that step's metrics line.
struct StepHook {
  std::function<void(int64_t step)> before;
  std::function<std::map<std::string, double>(int64_t step)> after;
};

struct TrainerOptions {
  std::string run_dir;  // checkpoints, metrics.jsonl; created when missing
  TrainMode mode = TrainMode::Full;
  torch::Device device = torch::kCPU;

  OptimizerOptions optimizer;
  ScheduleKind schedule = ScheduleKind::Cosine;
  double lr = 3e-4;           // peak
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.1;
  double max_grad_norm = 1.0;  // 0: no clipping
  int64_t grad_accum = 1;      // micro-batches per optimizer step

  // Budget: the run ends when any non-zero one is reached. At least one must be set.
  int64_t max_steps = 0;
  int64_t max_tokens = 0;  // real (non-padding) tokens seen
  double max_epochs = 0;   // of the stream's primary source

  // Checkpoints and validation (0: never; a final checkpoint is always written by run()).
  int64_t checkpoint_every = 0;
  int64_t keep_last = 3;                  // newest checkpoints kept; 0: all
  int64_t eval_every = 0;                 // validation (also at every checkpoint)
  std::string best_metric = "val_loss";   // metrics key deciding RUN/best; "": none
  bool best_lower_is_better = true;

  // Stability.
  int64_t max_consecutive_nonfinite = 5;  // stop the run after this many skipped in a row
  int64_t outlier_window = 0;             // rolling window for z-scores; 0: off
  double outlier_zscore = 6.0;            // skip when loss or grad norm is this many sd above

  // Reporting.
  int64_t log_every = 10;        // console lines when stdout is not a terminal
  bool console = true;
  bool measure_mfu = true;       // time a matmul peak once at start

  // Precision: bf16 runs the forward and backward passes under autocast (core/torch_compat.h:
  // matrix products in bf16; weights, gradients and optimizer state stay fp32).
  bool bf16 = false;
  // Causal LM: the head's loss in chunks of this many positions (model/chunked_loss.h) when no
  // loss term reads the logits (LossTerm::needs_logits); 0: the loss on full logits.
  int64_t loss_chunk_tokens = 0;

  uint64_t seed = 0;               // the trainer's own RNG (loss terms draw from it)
  std::string recipe_toml;         // saved as resolved_recipe.toml in each checkpoint
  std::string tokenizer_source;    // folder whose tokenizer files each checkpoint gets
  Distributed* distributed = nullptr;  // data parallel; nullptr: single process
};

// TrainerOptions from the recipe's train.* keys (run_dir, device, recipe_toml, tokenizer
// are the caller's).
TrainerOptions trainer_options_from_recipe(const Recipe& recipe);

// What one step did; history() keeps one per step (the resume test compares these).
struct StepRecord {
  int64_t step = 0;           // 0-based index of the optimizer step
  double loss = 0;            // total loss (task + weighted terms), target-weighted over micro-batches
  double task_loss = 0;
  std::map<std::string, double> terms;  // unweighted value of every extra loss term
  double lr = 0;
  double grad_norm = 0;       // before clipping
  int64_t tokens = 0;         // real tokens in the step's micro-batches
  bool skipped = false;
  std::string skip_reason;    // "non-finite loss", "non-finite grad norm", "outlier loss", ...
};

class Trainer {
 public:
  Trainer(Transformer model, BatchStream& stream, TrainerOptions options);
  ~Trainer();

  // --- set-up (before the first step) ---
  // Parameters of modules added to the model (adapters, routers), saved in each checkpoint's
  // extra.safetensors under these names. They train unless `trainable` is false: frozen ones
  // (a sequential stage's earlier experts) are saved and restored but never updated.
  void add_parameters(const std::map<std::string, torch::Tensor>& named, bool trainable = true);
  void add_loss_term(LossTerm term);
  void add_checkpoint_hook(CheckpointHook hook);
  void add_step_hook(StepHook hook);
  LossTerm& loss_term(const std::string& name);  // throws for an unknown name
  // A fixed held-out set: its target-weighted mean loss is logged as "val_loss".
  void set_validation(std::vector<TokenBatch> batches);
  // Further metrics at validation time (evaluation engineers plug in here); merged into the
  // metrics line of that step and eligible as best_metric.
  void add_evaluator(std::function<std::map<std::string, double>(Transformer&, int64_t step)> fn);
  // Called after the backward pass of each step, before the gradient norm (tests use it to
  // inject non-finite gradients).
  std::function<void(int64_t step)> after_backward;

  // --- running ---
  // Continues from RUN's newest complete checkpoint; false when there is none.
  bool resume();
  void resume_from(const std::string& checkpoint_folder);
  StepRecord step();                 // one optimizer step
  // Steps until the budget is spent (or, when stop_after_steps >= 0, until that many steps are
  // done: a session of a longer run, with the schedule of the whole run), then checkpoints.
  void run(int64_t stop_after_steps = -1);
  bool budget_reached() const;
  std::string save_checkpoint();     // RUN/step-XXXXXXX for the steps done so far
  double validate();                 // val_loss now (NaN without a validation set)

  int64_t steps_done() const { return step_; }
  int64_t tokens_seen() const { return tokens_seen_; }
  int64_t planned_steps() const { return schedule_.total_steps; }
  const std::vector<StepRecord>& history() const { return history_; }
  const Optimizer& optimizer() const { return optimizer_; }
  Transformer& model() { return model_; }
  // Every trainable parameter by name (model names, then added ones).
  const NamedParams& trainable() const { return trainable_; }

 private:
  void build_optimizer();
  bool is_main() const;
  bool data_parallel() const;
  void sync_parameters();
  bool is_outlier(double loss, double grad_norm, std::string& reason) const;
  std::map<std::string, double> run_evaluators();
  // `eval`: validation figures (also printed); `figures`: the step hooks' (log only).
  // Whether this step's loss comes from the hidden states in chunks (see TrainerOptions).
  bool chunked_loss() const;
  void log_step(const StepRecord& r, double step_seconds, const std::map<std::string, double>& eval,
                const std::map<std::string, double>& figures);
  void after_checkpoint(int64_t step, const std::map<std::string, double>& metrics);

  Transformer model_;
  BatchStream& stream_;
  TrainerOptions options_;
  ScheduleOptions schedule_;
  NamedParams trainable_;
  std::map<std::string, torch::Tensor> added_;
  std::set<std::string> frozen_;  // names in added_ that do not train
  Optimizer optimizer_;
  bool optimizer_built_ = false;
  std::vector<LossTerm> terms_;
  std::vector<CheckpointHook> checkpoint_hooks_;
  std::vector<StepHook> step_hooks_;
  bool parameters_synced_ = false;  // broadcast from rank 0 before the first step
  std::vector<TokenBatch> validation_;
  std::vector<std::function<std::map<std::string, double>(Transformer&, int64_t)>> evaluators_;
  std::mt19937_64 rng_;

  // Progress, all saved in checkpoints.
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
  int64_t consecutive_nonfinite_ = 0;
  std::deque<double> recent_loss_, recent_grad_norm_;  // outlier windows (finite, applied steps)
  std::optional<double> best_value_;
  int64_t best_step_ = -1;
  std::map<std::string, double> last_eval_;  // metrics of the latest validation
  int64_t last_eval_step_ = -1;

  // Reporting.
  std::vector<StepRecord> history_;
  std::unique_ptr<MetricsLog> log_;
  ConsoleProgress console_;
  int64_t matmul_params_ = 0;  // for FLOPs per token (metrics_log.h)
  double peak_flops_ = 0;
  int64_t last_seq_len_ = 0;
  int64_t session_steps_ = 0;
  std::chrono::steady_clock::time_point start_;
  double elapsed_before_ = 0;  // seconds of earlier sessions of a resumed run
};

}  // namespace gemkit
