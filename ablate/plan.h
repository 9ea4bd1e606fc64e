// The planner of `gemkit ablate`: recipes (one per method, named by the file stem) crossed with
// the cells of an override grid and seeds 0..N-1, each a run with its folder, its overrides and
// the settings `gemkit train` will resolve for it. Planning reads the recipes (and a training
// shard for the target domain) but starts and creates nothing, so every recipe and override is
// checked before anything runs. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "report/ablation_report.h"
#include "train/recipe.h"

namespace gemkit::ablate {

// What `gemkit ablate` is asked to do (its command line).
struct AblateOptions {
  std::vector<std::string> recipes, grid;  // grid: "key=value1,value2" per key
  int64_t seeds = 3, max_items = 0, max_documents = 0, max_tokens = 0, jobs = 1;
  std::string corpus, tasks, split = "test", target, out;
  std::string eval_precision = "fp32";  // eval.precision of every evaluation
  // "{domain}" in a recipe's string values becomes this (and it is the target unless --target):
  // one set of method recipes serves every domain, each grid in its own --out.
  std::string domain;
  // WiSE-FT: for every recipe whose trained model is dense (no SCAR or DTR modules), one more
  // method per a, "<stem>+wise<a>": its runs interpolate each finished run with the base
  // (`gemkit merge wise`) and are evaluated; nothing is trained.
  std::vector<double> wise_ft;
  bool no_deploy = false;
  bool report_only = false;  // write the report of the finished runs; train, evaluate, export nothing
  std::string runtime;  // gemkit-run; default: beside this binary or in the build tree's runtime/
};

struct PlannedRun {
  eval::AblationRun run;  // name, method, cell, seed, target; the outcome is filled in later
  std::string recipe, dir;
  std::vector<std::string> overrides;  // grid cell, seed (and the LoRA merge)
  bool lora = false;                   // evaluate RUN/merged rather than the latest checkpoint
  bool qat = false;                    // export with the recipe's QAT policy (else hybrid)
  // A WiSE-FT run: the folder of the run it interpolates with the base, and a. Empty: a training run.
  std::string wise_of;
  double wise_alpha = 0;
  Recipe settings;                     // the resolved recipe with the run's overrides
};

struct Plan {
  eval::AblationPlan report;     // methods, grid, seeds and settings, as the report records them
  std::vector<PlannedRun> runs;  // seed-major: every method's seed 0 first
  std::string base_model;        // the model.path every recipe adapts
  size_t cells = 0;              // grid cells
};

// Throws gemkit::Error naming the recipe or option at fault.
Plan plan_ablation(const AblateOptions& options);

// train.max_steps of a run's settings (0 when absent).
int64_t max_steps(const PlannedRun& run);

// How the settings a run was trained with (`before`, its resolved_recipe.toml resolved again)
// differ from those it gets now: "now key = value" for up to four keys set differently now,
// then "was key = value" for the old values (up to eight in all), joined by "; ". Empty when
// they are the same.
std::string settings_changes(const Recipe& before, const Recipe& now);

}  // namespace gemkit::ablate
