// gemkit eval: perplexity per domain and task scores (multiple choice, classification) of a
// checkpoint, with bootstrap intervals; writes a JSON report and a markdown table next to it.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/recipe_args.h"
#include "core/error.h"
#include "eval/evaluate.h"
#include "report/eval_report.h"

namespace gemkit::cli {
namespace {

void run_eval(const Recipe& r) {
  eval::EvalOptions o;
  o.model_path = r.get_string("model.path");
  o.device = r.get_string("model.device");
  if (r.has("eval.tasks")) o.tasks = r.get_string("eval.tasks");
  if (r.has("eval.corpus")) o.corpus = r.get_string("eval.corpus");
  o.split = r.get_string("eval.split");
  o.batch_size = r.get_int("eval.batch_size");
  o.seq_len = r.get_int("eval.seq_len");
  o.bf16 = r.get_string("eval.precision") == "bf16";
  o.max_items = r.get_int("eval.max_items");
  o.max_documents = r.get_int("eval.max_documents");
  o.max_tokens = r.get_int("eval.max_tokens");
  o.dtr_rule = r.get_string("eval.dtr_rule");
  o.task_format = r.get_string("eval.task_format");
  if (r.has("eval.scar_general_bias")) o.scar_general_bias = r.get_float("eval.scar_general_bias");
  o.bootstrap.resamples = r.get_int("eval.bootstrap_resamples");
  o.bootstrap.seed = uint64_t(r.get_int("eval.seed"));
  o.bootstrap.confidence = r.get_float("eval.confidence");
  // Default: out/eval/<model folder name>.json.
  std::string out = r.has("eval.out") ? r.get_string("eval.out") : "";
  if (out.empty()) {
    std::filesystem::path m(o.model_path);
    if (m.filename().empty()) m = m.parent_path();
    out = "out/eval/" + m.filename().string() + ".json";
  }

  eval::Report report = eval::run_evaluation(o);
  report.settings["recipe"] = r.source();
  eval::write_report(report, out);
  std::printf("%s\n", eval::to_markdown(report).c_str());
  std::printf("wrote %s and %s (%.1f s)\n", out.c_str(), eval::markdown_path(out).c_str(), report.elapsed_s);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "eval", "perplexity per domain and task accuracy/macro-F1 with bootstrap 95% intervals (JSON + markdown)");
  auto recipe = std::make_shared<RecipeArgs>(cmd);
  recipe->flag("--model,-m", "model.path", "checkpoint folder");
  recipe->flag("--tasks", "eval.tasks", "suite or domain folder, or comma-separated task files");
  recipe->flag("--corpus", "eval.corpus", "suite or domain folder, or comma-separated corpus JSONL files (perplexity)");
  recipe->flag("--split", "eval.split", "split of the tasks and the corpus");
  recipe->flag("--out,-o", "eval.out", "report JSON path (the markdown goes next to it)");
  recipe->flag("--max-items", "eval.max_items", "items per task (0: all)");
  recipe->flag("--batch-size", "eval.batch_size", "rows per forward pass");
  recipe->flag("--precision", "eval.precision", "fp32 or bf16 (autocast mixed precision; needs AVX512_BF16 or AMX)");
  recipe->flag("--device", "model.device", "cpu or cuda");
  recipe->flag("--dtr-rule", "eval.dtr_rule", "token router rule of a routed checkpoint: threshold or top-k");
  recipe->flag("--scar-general-bias", "eval.scar_general_bias", "SCAR checkpoints: nats added to the general expert's router logit (default: the checkpoint's)");
  recipe->flag("--task-format", "eval.task_format", "tasks as running text (base models) or as chat turns through the model's chat template (instruct models)");
  cmd->callback([recipe] { run_eval(recipe->resolve()); });
}

}  // namespace gemkit::cli
