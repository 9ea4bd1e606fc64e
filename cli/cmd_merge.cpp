// gemkit merge wise | task-arithmetic | ties: checkpoints of one base model merged in weight space
// (merge/merge.h). WiSE-FT is the interpolation sweep of the baselines (evaluation only: no
// training); task arithmetic adds several fine-tunings' changes to the base.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "import/model_registry.h"
#include "merge/merge.h"

namespace gemkit::cli {
namespace {

struct MergeArgs {
  std::string base, out;
  std::vector<std::string> models;
  double scale = 1.0, density = 0.2;
  bool force = false;
  MergeMethod method = MergeMethod::TaskArithmetic;
};

void run_merge(MergeArgs a, const char* what) {
  MergeOptions o;
  o.base = resolve_model_path(a.base, default_cache_dir());  // models:NAME
  for (const std::string& m : a.models) o.models.push_back(resolve_model_path(m, default_cache_dir()));
  o.scale = a.scale;
  o.out = a.out;
  o.force = a.force;
  o.method = a.method;
  o.density = a.density;
  merge_checkpoints(o);
  std::printf("%s of %zu checkpoint(s) with %s at %g -> %s\n", what, o.models.size(), o.base.c_str(), o.scale,
              o.out.c_str());
}

}  // namespace

void add_merge_commands(CLI::App& app) {
  CLI::App* merge = app.add_subcommand("merge", "merge checkpoints of one base model in weight space");
  merge->require_subcommand(1);

  auto wise = std::make_shared<MergeArgs>();
  CLI::App* w = merge->add_subcommand("wise", "WiSE-FT: theta = (1 - a) theta0 + a theta_ft");
  w->add_option("--base", wise->base, "the base checkpoint theta0 (a folder or models:NAME)")->required();
  w->add_option("--model", wise->models, "the fine-tuned checkpoint theta_ft")->required()->expected(1);
  w->add_option("--alpha", wise->scale, "a: 0 gives the base, 1 the fine-tuned model")
      ->required()
      ->check(CLI::Range(0.0, 1.0));
  w->add_option("--out", wise->out, "the merged checkpoint folder")->required();
  w->add_flag("--force", wise->force, "replace an existing --out");
  w->callback([wise] { run_merge(*wise, "WiSE-FT"); });

  auto ta = std::make_shared<MergeArgs>();
  CLI::App* t = merge->add_subcommand("task-arithmetic", "theta = theta0 + lambda * sum_i (theta_i - theta0)");
  t->add_option("--base", ta->base, "the base checkpoint theta0 (a folder or models:NAME)")->required();
  t->add_option("--models", ta->models, "fine-tuned checkpoints of that base")->required()->delimiter(',');
  t->add_option("--lambda", ta->scale, "lambda: the scale of the summed task vectors")->required();
  t->add_option("--out", ta->out, "the merged checkpoint folder")->required();
  t->add_flag("--force", ta->force, "replace an existing --out");
  t->callback([ta] { run_merge(*ta, "task arithmetic"); });

  auto ties = std::make_shared<MergeArgs>();
  ties->method = MergeMethod::Ties;
  CLI::App* s = merge->add_subcommand("ties", "TIES: theta0 + lambda * (trim, elect sign, disjoint mean of the task vectors)");
  s->add_option("--base", ties->base, "the base checkpoint theta0 (a folder or models:NAME)")->required();
  s->add_option("--models", ties->models, "fine-tuned checkpoints of that base")->required()->delimiter(',');
  s->add_option("--lambda", ties->scale, "lambda: the scale of the merged task vector")->required();
  s->add_option("--density", ties->density, "share of each task vector's entries kept (per tensor)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 1.0));
  s->add_option("--out", ties->out, "the merged checkpoint folder")->required();
  s->add_flag("--force", ties->force, "replace an existing --out");
  s->callback([ties] { run_merge(*ties, "TIES"); });
}

}  // namespace gemkit::cli
