// Checkpoint folders of a training run, written so that a crash at any instant leaves either
// the previous checkpoints or the new one complete, never a half-written folder that resume
// could pick up.
//
// Run folder layout:
//   RUN/step-0000100/          one checkpoint (the name carries the optimizer steps done)
//       config.json, model.safetensors, tokenizer files   the model, Hugging Face layout (fp32)
//       extra.safetensors      parameters of modules added to the model (adapters, routers)
//       optimizer.safetensors  AdamW exp_avg / exp_avg_sq per parameter name
//       trainer_state.json     step, schedule, AdamW step counts, RNG states, loader state,
//                              stability window, best metric (format "gemkit-trainer-state" v1)
//       metrics.jsonl          the metrics log up to this step
//       resolved_recipe.toml   the recipe the run uses
//   RUN/latest                 "step-0000100": the newest checkpoint (written atomically)
//   RUN/best                   the checkpoint with the best validation metric
//   RUN/.tmp-step-*            a checkpoint being written; removed at the next start
//
// Writing: everything goes into RUN/.tmp-step-XXXXXXX.<pid>, each file fsynced; the folder is
// renamed into place and RUN is fsynced; then the pointer files are replaced atomically.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace gemkit {

inline constexpr const char* kTrainerStateFile = "trainer_state.json";

std::string checkpoint_name(int64_t step);  // "step-0000100"

// Writes checkpoint `step` of `run_dir`: `fill(tmp_folder)` writes the files into an empty
// temporary folder, which is then made durable and renamed to RUN/step-XXXXXXX (an older
// folder of that name is replaced). Returns the final path.
std::string write_checkpoint(const std::string& run_dir, int64_t step,
                             const std::function<void(const std::string&)>& fill);

// Complete checkpoints (name step-NNNNNNN and a trainer_state.json inside), by step.
std::vector<int64_t> list_checkpoints(const std::string& run_dir);
// The checkpoint to resume from: the "latest" pointer when it names a complete checkpoint,
// else the highest complete one; nullopt when there is none.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);
// Points RUN/<pointer> ("latest", "best") at checkpoint `step`, atomically.
void set_checkpoint_pointer(const std::string& run_dir, const std::string& pointer, int64_t step);
// The step a pointer file names, or nullopt.
std::optional<int64_t> read_checkpoint_pointer(const std::string& run_dir, const std::string& pointer);
// Deletes all but the newest `keep_last` checkpoints, except those in `keep` (the best).
// keep_last <= 0 keeps everything.
void prune_checkpoints(const std::string& run_dir, int64_t keep_last, const std::set<int64_t>& keep);
// Removes RUN/.tmp-step-* folders left by a run killed while writing a checkpoint.
void remove_stale_checkpoint_temps(const std::string& run_dir);

// Test hook: when the environment variable GEMKIT_TEST_KILL_DURING_CHECKPOINT equals `step`,
// the process SIGKILLs itself (the trainer calls this halfway through writing a checkpoint).
void maybe_kill_for_test(int64_t step);

// RNG states as text for trainer_state.json: torch's default CPU generator, CUDA's when
// present, and a std::mt19937_64.
std::string torch_rng_state_hex();
void restore_torch_rng_state_hex(const std::string& hex, const std::string& where);
std::string cuda_rng_state_hex();  // "" when CUDA is not available
void restore_cuda_rng_state_hex(const std::string& hex, const std::string& where);
std::string mt19937_state_text(const std::mt19937_64& rng);
void restore_mt19937_state_text(std::mt19937_64& rng, const std::string& text, const std::string& where);

}  // namespace gemkit
