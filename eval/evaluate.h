// One evaluation run, as `gemkit eval` performs it: load the checkpoint and its tokenizer,
// run perplexity on the held-out corpus and every task, and collect a Report. Torch-free
// header (the model is loaded inside).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "eval/bootstrap.h"
#include "eval/result.h"

namespace gemkit::eval {

struct EvalOptions {
  std::string model_path;  // checkpoint folder (config.json, weights, tokenizer files)
  std::string tasks;       // suite/domain folder or comma-separated task files; empty: none
  std::string corpus;      // suite/domain folder or comma-separated corpus files; empty: none
  std::string split = "test";
  std::string device = "cpu";
  int64_t batch_size = 8;
  int64_t seq_len = 512;        // longest row; capped at the model's max_position_embeddings
  int64_t max_items = 0;        // per task; 0: all
  int64_t max_documents = 0;    // per corpus file; 0: all
  int64_t max_tokens = 0;       // per corpus: whole documents in file order until this many tokens; 0: all
  BootstrapOptions bootstrap;
  // Routed checkpoints: the token router's rule, "threshold" (causal, what decoding runs) or
  // "top-k" (the training rule at the trained capacity; shows what causality costs).
  std::string dtr_rule = "threshold";
  // Routed checkpoints with SCAR: the general expert's router logit bias (routing/expert_router.h)
  // to evaluate with instead of the checkpoint's (choosing it on validation).
  std::optional<double> scar_general_bias;
  bool bf16 = false;  // bf16 mixed precision for the forward passes (eval.precision)
  // How task items are put to a causal LM (eval/task_prompts.h): "text" (running text) or "chat"
  // (through the checkpoint's chat template: instruct models). Results record it in their method.
  std::string task_format = "text";
};

// Tasks or figures the model cannot produce (perplexity or multiple choice with an encoder,
// label words with a classification head) appear as skipped results with the reason.
Report run_evaluation(const EvalOptions& options);

}  // namespace gemkit::eval
