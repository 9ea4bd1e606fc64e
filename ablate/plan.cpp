#include "ablate/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <variant>

#include "ablate/run_naming.h"
#include "core/error.h"
#include "data/token_shards.h"
#include "import/model_registry.h"

namespace gemkit::ablate {
namespace {

namespace fs = std::filesystem;

// A setting's value as Recipe::to_toml writes it (so the messages quote what
// resolved_recipe.toml holds): strings quoted and escaped, floats with a '.', lists in brackets.
std::string setting_text(const std::string& key, const RecipeValue& v) {
  return key + " = " + recipe_format_value(v);
}

// The --grid options as (key, values) in command-line order. Values are separated by ',' or, when
// the option holds a ';', by ';' so that a value may be a list ("train.data_weights=0.99,0.01;0.75,0.25").
eval::Grid parse_grid(const std::vector<std::string>& options) {
  eval::Grid grid;
  for (const std::string& g : options) {
    const size_t eq = g.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == g.size())
      fail("--grid " + g, "expected key=value1,value2,... (or key=list1;list2;... for list values)");
    const std::string key = g.substr(0, eq);
    if (key == "train.seed") fail("--grid " + g, "train.seed is set by --seeds (0..N-1)");
    for (const auto& [k, v] : grid)
      if (k == key) fail("--grid " + g, "the key " + key + " is given twice");
    std::vector<std::string> values;
    const char sep = g.find(';', eq) != std::string::npos ? ';' : ',';
    std::stringstream ss(g.substr(eq + 1));
    for (std::string v; std::getline(ss, v, sep);)
      if (!v.empty()) values.push_back(v);
    if (values.empty()) fail("--grid " + g, "expected at least one value after '='");
    grid.emplace_back(key, values);
  }
  return grid;
}

// The one domain of the documents of a recipe's first training shard.
std::string shard_domain(const std::string& recipe, const std::string& shard) {
  std::set<std::string> domains;
  try {
    const TokenShard s(shard);
    for (int64_t d = 0; d < s.n_docs(); ++d) domains.insert(s.info().domain_names.at(size_t(s.doc_domain(d))));
  } catch (const Error& e) {
    fail(recipe, std::string("cannot read the target domain from train.data (") + e.what() + "); give --target");
  }
  if (domains.size() != 1)
    fail(recipe, "the documents of train.data " + shard + " belong to " + std::to_string(domains.size()) +
                     " domains, so the target domain is unclear; give --target");
  return *domains.begin();
}

// "s01_finetune+wise0.25": a WiSE-FT method of the recipe (eval/ablation_rows.h method_family).
std::string wise_method(const std::string& method, double alpha) {
  char a[32];
  std::snprintf(a, sizeof a, "%g", alpha);
  return method + "+wise" + a;
}

// The overrides that put `domain` in place of "{domain}" in every string value of `r` (lists
// element by element), applied to `r` too. A recipe with placeholders and no --domain is an error.
std::vector<std::string> domain_overrides(Recipe& r, const std::string& recipe, const std::string& domain) {
  const std::string mark = "{domain}";
  const auto put = [&](std::string s) {
    for (size_t at = s.find(mark); at != std::string::npos; at = s.find(mark, at + domain.size()))
      s.replace(at, mark.size(), domain);
    return s;
  };
  std::vector<std::string> out;
  for (const auto& [key, value] : r.values()) {
    std::string text;
    if (const auto* s = std::get_if<std::string>(&value); s && s->find(mark) != std::string::npos) text = put(*s);
    if (const auto* l = std::get_if<std::vector<std::string>>(&value)) {
      bool any = false;
      for (const std::string& e : *l) any = any || e.find(mark) != std::string::npos;
      for (size_t i = 0; any && i < l->size(); ++i) text += (i ? "," : "") + put((*l)[i]);
    }
    if (text.empty()) continue;
    if (domain.empty()) fail(recipe, key + " uses {domain}: give the domain with --domain");
    out.push_back(key + "=" + text);
  }
  for (const std::string& o : out) r.apply_override(o, "--domain");
  return out;
}

}  // namespace

Plan plan_ablation(const AblateOptions& a) {
  Plan plan;
  if (a.seeds < 1) fail("--seeds", "expected at least 1");
  if (a.jobs < 1) fail("--jobs", "expected at least 1");
  for (double alpha : a.wise_ft)
    if (!(alpha > 0 && alpha < 1)) fail("--wise-ft", "each a must lie strictly between 0 (the base) and 1 (the run)");
  if (a.eval_precision != "fp32" && a.eval_precision != "bf16") fail("--eval-precision", "expected fp32 or bf16");
  plan.report.grid = parse_grid(a.grid);
  const std::vector<eval::GridCell> cells = eval::grid_cells(plan.report.grid);
  plan.cells = cells.size();
  for (const std::string& recipe : a.recipes) {
    const std::string method = fs::path(recipe).stem().string();
    for (const std::string& m : plan.report.methods)
      if (m == method) fail(recipe, "two recipes named " + method + ": the file stem names the method");
    plan.report.methods.push_back(method);
    std::string target = a.target.empty() ? a.domain : a.target;
    bool any_dense = false;  // in some grid cell: the WiSE-FT methods get a row
    for (const auto& cell : cells) {
      Recipe r = Recipe::load(recipe);
      std::vector<std::string> overrides = domain_overrides(r, recipe, a.domain);
      for (const auto& [k, v] : cell) overrides.push_back(k + "=" + v);
      for (const std::string& o : overrides) r.apply_override(o, "--grid");
      r.resolve();
      if (!r.has("train.data")) fail(recipe, "train.data: not set (token shards to train on)");
      if (!r.has("model.path"))
        fail(recipe, "model.path: not set; ablate compares methods that adapt one base model (model.path)");
      // As `gemkit train` resolves it (models:NAME -> the cached folder), so that the settings a
      // run was trained with compare equal.
      r.set("model.path", resolve_model_path(r.get_string("model.path"), default_cache_dir()), "model.path");
      if (plan.base_model.empty()) plan.base_model = r.get_string("model.path");
      if (r.get_string("model.path") != plan.base_model)
        fail(recipe, "model.path is " + r.get_string("model.path") + ", the first recipe's is " + plan.base_model +
                         ": every method must adapt the same base model");
      if (target.empty()) target = shard_domain(recipe, r.get_strings("train.data").front());
      const bool lora = r.get_string("train.mode") == "lora";
      const bool qat = r.has("quant.qat") && r.get_bool("quant.qat");
      // LoRA checkpoints hold the unchanged base; the merged folder is the adapted model.
      if (lora) {
        overrides.push_back("train.lora_merge_on_save=true");
        r.apply_override(overrides.back(), "ablate");
      }
      const bool dense = !(r.has("scar.enabled") && r.get_bool("scar.enabled")) &&
                         !(r.has("dtr.enabled") && r.get_bool("dtr.enabled")) && r.get_string("train.mode") != "frozen";
      any_dense = any_dense || dense;
      for (int64_t s = 0; s < a.seeds; ++s) {
        PlannedRun p;
        p.recipe = recipe;
        p.lora = lora;
        p.qat = qat;
        p.run.method = method;
        p.run.cell = cell;
        p.run.seed = s;
        p.run.target = target;
        p.run.name = run_name(method, cell, s);
        p.dir = (fs::path(a.out) / ("runs/" + p.run.name)).string();
        p.overrides = overrides;
        p.overrides.push_back("train.seed=" + std::to_string(s));
        p.settings = r;  // what `gemkit train` will resolve for this run
        p.settings.apply_override(p.overrides.back(), "--seeds");
        plan.runs.push_back(p);
        if (!dense) continue;
        for (double alpha : a.wise_ft) {  // the interpolations of this run with the base
          PlannedRun w = p;
          w.run.method = wise_method(method, alpha);
          w.run.name = run_name(w.run.method, cell, s);
          w.dir = (fs::path(a.out) / ("runs/" + w.run.name)).string();
          w.wise_of = p.dir;
          w.wise_alpha = alpha;
          plan.runs.push_back(std::move(w));
        }
      }
    }
    if (any_dense)
      for (double alpha : a.wise_ft) plan.report.methods.push_back(wise_method(method, alpha));
  }
  // Seed-major order: every method's seed 0 first, so a long grid stopped early (or a report
  // made with a smaller --seeds) already compares all methods.
  std::stable_sort(plan.runs.begin(), plan.runs.end(),
                   [](const PlannedRun& x, const PlannedRun& y) { return x.run.seed < y.run.seed; });
  plan.report.seeds = a.seeds;
  plan.report.settings = {{"recipes", a.recipes},        {"base_model", plan.base_model},
                          {"eval_corpus", a.corpus},     {"eval_tasks", a.tasks},
                          {"split", a.split},            {"max_items", a.max_items},
                          {"max_documents", a.max_documents}, {"max_tokens", a.max_tokens},
                          {"eval_precision", a.eval_precision}, {"wise_ft", a.wise_ft}, {"domain", a.domain},
                          {"target", a.target}};
  return plan;
}

int64_t max_steps(const PlannedRun& run) {
  return run.settings.has("train.max_steps") ? run.settings.get_int("train.max_steps") : 0;
}

std::string settings_changes(const Recipe& before, const Recipe& now) {
  const std::map<std::string, RecipeValue>& was = before.values();
  const std::map<std::string, RecipeValue>& is = now.values();
  if (was == is) return "";
  const auto differs = [](const std::map<std::string, RecipeValue>& other, const std::string& key, const RecipeValue& v) {
    const auto it = other.find(key);
    return it == other.end() || !(it->second == v);
  };
  std::string changes;
  int shown = 0;
  for (const auto& [k, v] : is)
    if (differs(was, k, v) && shown++ < 4) changes += (changes.empty() ? "" : "; ") + ("now " + setting_text(k, v));
  for (const auto& [k, v] : was)
    if (differs(is, k, v) && shown++ < 8) changes += (changes.empty() ? "" : "; ") + ("was " + setting_text(k, v));
  return changes;
}

}  // namespace gemkit::ablate
