// gemkit ablate RECIPE [RECIPE ...] [--grid key=v1,v2 ...] [--seeds N] --eval-corpus DIR
//   [--eval-tasks DIR] [--split S] [--max-items N] [--max-documents N] [--max-tokens N]
//   [--eval-precision fp32|bf16] [--wise-ft a1,a2,...] [--domain D] [--target DOMAIN] --out DIR [--jobs N]:
// trains every recipe (a method: its file stem) on every cell of the override grid with seeds
// 0..N-1, each run in OUT/runs/<method>[__key=value...]__seed<s> by `gemkit train ... --resume`
// in a child process of this binary, evaluates each final checkpoint and the recipes' base model
// with `gemkit eval`, exports it to the compact format and measures it with `gemkit-run --bench`
// (RUN/deploy/model.gguf, RUN/deploy.json; --no-deploy skips this), and writes the report
// (report/ablation_report.h). A run whose folder holds DONE is skipped; an interrupted one continues
// from its last checkpoint; a failing one is reported (RUN/log.txt) and the others go on.
// --wise-ft adds, for every recipe whose model is dense, methods <recipe>+wise<a> whose runs are
// the finished runs interpolated with the base (`gemkit merge wise`) and evaluated.
// --domain D fills "{domain}" in the recipes' string values, so one set of method recipes serves
// every domain (each grid in its own --out).
// --report-only writes the report of the runs finished so far and starts nothing (a look at a grid
// that is still running, possibly in another process).
// The work is done by ablate/: the planner (ablate/plan.h), the run folder names
// (ablate/run_naming.h) and the scheduler (ablate/scheduler.h); this file parses the options.
#include <memory>

#include "ablate/scheduler.h"
#include "cli/commands.h"

namespace gemkit::cli {

void add_ablate_command(CLI::App& app) {
  auto a = std::make_shared<ablate::AblateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "ablate", "train recipes over a grid of overrides and seeds, evaluate every run and the base model, report");
  cmd->add_option("recipes", a->recipes, "training recipes, one per method; the first is the baseline (plain fine-tuning)")
      ->required();
  cmd->add_option("--grid", a->grid,
                  "key=value1,value2: recipe override values to cross (repeatable); key=a,b;c,d for list values")
      ->allow_extra_args(false);
  cmd->add_option("--seeds", a->seeds, "seeds 0..N-1 per method and grid cell (train.seed)")->capture_default_str();
  cmd->add_option("--eval-corpus", a->corpus, "held-out corpus for perplexity (suite or domain folder, or files)")
      ->required();
  cmd->add_option("--eval-tasks", a->tasks, "tasks for S(m,d) (suite or domain folder, or files)");
  cmd->add_option("--split", a->split, "evaluation split")->capture_default_str();
  cmd->add_option("--max-items", a->max_items, "items per task (0: all)")->capture_default_str();
  cmd->add_option("--max-documents", a->max_documents, "documents per domain corpus for perplexity (0: all)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", a->max_tokens,
                  "tokens per domain corpus for perplexity: whole documents in file order until reached (0: all)")
      ->capture_default_str();
  cmd->add_option("--eval-precision", a->eval_precision, "eval.precision of every evaluation: fp32 or bf16")
      ->capture_default_str();
  cmd->add_option("--wise-ft", a->wise_ft,
                  "a values (0 < a < 1): WiSE-FT methods <recipe>+wise<a> for every recipe with a dense model, "
                  "its runs interpolated with the base and evaluated (no training)")
      ->delimiter(',');
  cmd->add_option("--domain", a->domain,
                  "put this domain in place of {domain} in the recipes' string values (data paths, SCAR experts); "
                  "also the target domain");
  cmd->add_option("--target", a->target, "target domain of every recipe (default: the domain of its train.data shard)");
  cmd->add_option("--out,-o", a->out, "ablation folder: runs/, base_eval.json, report.*")->required();
  cmd->add_option("--jobs,-j", a->jobs, "runs in parallel")->capture_default_str();
  cmd->add_flag("--no-deploy", a->no_deploy, "do not export each run (compact format) nor measure it with gemkit-run");
  cmd->add_flag("--report-only", a->report_only,
                "write the report of the runs finished so far; train, evaluate, export and measure nothing");
  cmd->add_option("--runtime", a->runtime, "gemkit-run to measure exported runs with (default: beside gemkit, or BUILD/runtime/)");
  cmd->callback([a] { ablate::run_ablation(*a); });
}

}  // namespace gemkit::cli
