#include "eval/ablation_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/file_io.h"
#include "eval/compare.h"
#include "eval/item_bootstrap.h"
#include "eval/svg_plot.h"
#include "eval/transfer.h"

namespace gemkit::eval {
namespace {

using json = nlohmann::json;
using Figures = std::vector<DomainFigures>;

// Prefixes of the routing and preservation metrics that metrics.jsonl may carry.
const char* const kTrainingPrefixes[] = {"dtr/", "scar/", "akp/"};

// The figures of one run against the base (index 0 of the figures) and, for forgetting
// reduction and gain kept, against the baseline method's run of the same cell and seed.
struct MetricDef {
  const char* name;
  const char* title;  // markdown column
  const char* format;
  bool percent;
  std::function<double(const Figures& f, size_t run, long baseline, const std::string& target)> of;
  bool against_baseline = false;  // undefined for the baseline itself ("reference" in the table)
};

double at(const std::map<std::string, double>& m, const std::string& k) { return m.count(k) ? m.at(k) : NAN; }

const std::vector<MetricDef>& metric_defs() {
  static const std::vector<MetricDef> defs = {
      {"target_ppl", "target PPL", "%.2f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return at(f[r].perplexity, t); }},
      {"domain_gain", "domain gain", "%.1f", true,
       [](const Figures& f, size_t r, long, const std::string& t) { return section_six(f[0], f[r], t).domain_gain; }},
      {"general_ppl", "general PPL", "%.2f", false,
       [](const Figures& f, size_t r, long, const std::string&) { return at(f[r].perplexity, kGeneralDomain); }},
      {"general_drift", "general drift", "%.1f", true,
       [](const Figures& f, size_t r, long, const std::string& t) { return section_six(f[0], f[r], t).general_drift; }},
      {"forgetting_reduction", "forgetting reduction", "%.1f", true,
       [](const Figures& f, size_t r, long b, const std::string& t) {
         if (b < 0) return double(NAN);
         return forgetting_reduction(section_six(f[0], f[r], t).general_drift,
                                     section_six(f[0], f[size_t(b)], t).general_drift);
       },
       true},
      {"gain_kept", "gain kept", "%.1f", true,
       [](const Figures& f, size_t r, long b, const std::string& t) {
         if (b < 0) return double(NAN);
         const double baseline_gain = section_six(f[0], f[size_t(b)], t).domain_gain;
         return baseline_gain > 0 ? section_six(f[0], f[r], t).domain_gain / baseline_gain : double(NAN);
       },
       true},
      {"S_target", "S(m,t)", "%.3f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return section_six(f[0], f[r], t).S_target; }},
      {"S_other", "S(m,~t)", "%.3f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return section_six(f[0], f[r], t).S_other; }},
      {"DSI", "DSI", "%.3f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return section_six(f[0], f[r], t).DSI; }},
      {"GG", "GG", "%.1f", true,
       [](const Figures& f, size_t r, long, const std::string& t) { return section_six(f[0], f[r], t).GG; }},
      {"CDTR", "CDTR", "%.3f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return cdtr(f[0], f[r], t); }},
      {"CDTR_ppl", "CDTR (PPL)", "%.3f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return cdtr_ppl(f[0], f[r], t); }},
  };
  return defs;
}

// Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
const double kT975[] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                        2.2010,  2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                        2.0796,  2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};

double t975(size_t df) {
  if (df >= 1 && df <= 30) return kT975[df - 1];
  const double z = 1.959964, d = double(df);  // Cornish-Fisher expansion beyond the table
  return z + (z * z * z + z) / (4 * d) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

std::string cell_text(const GridCell& cell, const char* sep) {
  std::string s;
  for (const auto& [k, v] : cell) s += (s.empty() ? "" : sep) + k + "=" + v;
  return s;
}

std::string num(double v, const char* f = "%.6g") {
  if (!std::isfinite(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

struct Cell {  // one figure of one row
  Interval seeds;          // mean and interval over seeds
  Interval items;          // item-level interval of the mean (NaN bounds: none)
  std::vector<double> per_seed;
  size_t n = 0;            // seeds where the figure is defined
};

struct Row {
  std::string method, label;
  GridCell cell;
  std::string target;
  std::vector<const AblationRun*> ok, failed;
  std::map<std::string, Cell> metrics, training, deployment;
  std::map<std::string, double> ppl_change, score_delta;  // transfer row: mean over seeds, by domain
};

json cell_json(const Cell& c) {
  json j = {{"mean", number_or_null(c.seeds.value)}, {"low", number_or_null(c.seeds.low)},
            {"high", number_or_null(c.seeds.high)}, {"n", c.n}};
  j["per_seed"] = json::array();
  for (double v : c.per_seed) j["per_seed"].push_back(number_or_null(v));
  if (std::isfinite(c.items.low)) j["item_interval"] = {c.items.low, c.items.high};
  return j;
}

}  // namespace

std::vector<GridCell> grid_cells(const Grid& grid) {
  std::vector<GridCell> cells{{}};
  for (const auto& [key, values] : grid) {
    std::vector<GridCell> next;
    for (const GridCell& c : cells)
      for (const std::string& v : values) {
        next.push_back(c);
        next.back().emplace_back(key, v);
      }
    cells = next;
  }
  return cells;
}

std::string expert_by_role(const std::string& key, const std::string& target) {
  if (target.empty() || target == kGeneralDomain) return key;
  const std::string own = "scar/load/" + target;
  const bool is_own = key.size() >= own.size() && key.compare(key.size() - own.size(), own.size(), own) == 0 &&
                      (key.size() == own.size() || key[key.size() - own.size() - 1] == '/');
  return is_own ? key.substr(0, key.size() - target.size()) + "target" : key;
}

std::map<std::string, double> training_figures(const RunMetrics& metrics, const std::string& target) {
  std::map<std::string, double> out;
  for (const auto& [name, series] : metrics.series) {
    if (series.values.empty()) continue;
    if (name == "tokens_per_s") {
      double sum = 0;
      for (double v : series.values) sum += v;
      out[name] = sum / double(series.values.size());
    }
    for (const char* prefix : kTrainingPrefixes)
      if (name.rfind(prefix, 0) == 0) out[expert_by_role(name, target)] = series.values.back();
  }
  return out;
}

std::map<std::string, double> evaluation_routing(const json& eval_report, const std::string& target) {
  std::map<std::string, double> out;
  if (!eval_report.is_object() || !eval_report.contains("results") || !eval_report.at("results").is_array()) return out;
  for (const json& r : eval_report.at("results")) {
    if (!r.is_object() || r.value("kind", "") != "perplexity" || !r.contains("stats") || !r.at("stats").is_object()) continue;
    const std::string domain = r.value("domain", "");
    const char* which = domain == kGeneralDomain ? "general" : domain == target ? "target" : nullptr;
    if (!which) continue;
    for (const auto& [k, v] : r.at("stats").items())
      if (v.is_number() && (k.rfind("scar/", 0) == 0 || k.rfind("dtr/", 0) == 0))
        out["eval/" + std::string(which) + "/" + expert_by_role(k, target)] = v.get<double>();
  }
  return out;
}

const char* const kDeploymentKeys[5] = {"file_mb", "decode_tok_s", "prompt_tok_s", "peak_rss_mb", "realised_capacity"};

std::map<std::string, double> deployment_figures(const json& bench) {
  std::map<std::string, double> out;
  if (!bench.is_object()) return out;
  for (const char* k : kDeploymentKeys)
    if (bench.contains(k) && bench.at(k).is_number()) out[k] = bench.at(k).get<double>();
  return out;
}

Interval seed_interval(const std::vector<double>& values) {
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  Interval out{NAN, NAN, NAN};
  if (v.empty()) return out;
  double sum = 0;
  for (double x : v) sum += x;
  out.value = sum / double(v.size());
  if (v.size() < 2) return out;
  double ss = 0;
  for (double x : v) ss += (x - out.value) * (x - out.value);
  const double half = t975(v.size() - 1) * std::sqrt(ss / double(v.size() - 1)) / std::sqrt(double(v.size()));
  out.low = out.value - half;
  out.high = out.value + half;
  return out;
}

AblationReport ablation_report(const AblationPlan& plan, const json& base_eval, const std::vector<AblationRun>& runs,
                               const BootstrapOptions& options) {
  if (plan.methods.empty()) fail("ablation report", "no methods");
  // The reports: the base first, then every finished run's.
  std::vector<LabelledReport> reports{{"base", base_eval}};
  std::map<const AblationRun*, size_t> index;
  for (const AblationRun& r : runs)
    if (r.ok) {
      index[&r] = reports.size();
      reports.push_back({r.name, r.eval});
    }
  const ItemBootstrap boot(reports, options);  // checks every report
  Figures figures;
  for (const LabelledReport& r : reports) figures.push_back(domain_figures(r));

  // Rows: method-major, then the grid cells in order.
  std::vector<Row> rows;
  const std::vector<GridCell> cells = grid_cells(plan.grid);
  for (const std::string& method : plan.methods)
    for (const auto& cell : cells) {
      Row row;
      row.method = method;
      row.cell = cell;
      row.label = method + (cell.empty() ? "" : " [" + cell_text(cell, ", ") + "]");
      for (const AblationRun& r : runs)
        if (r.method == method && r.cell == cell) {
          (r.ok ? row.ok : row.failed).push_back(&r);
          if (row.target.empty()) row.target = r.target;
        }
      rows.push_back(std::move(row));
    }
  // Each target domain's baseline: the first method (in command-line order) adapting to it, so
  // one grid can hold several domains, each with its own plain fine-tuning.
  std::map<std::string, std::string> baseline_for;
  for (const std::string& m : plan.methods)
    for (const AblationRun& r : runs)
      if (r.method == m && !baseline_for.count(r.target)) baseline_for[r.target] = m;
  const auto is_baseline = [&](const std::string& method, const std::string& target) {
    auto it = baseline_for.find(target);
    return it != baseline_for.end() && it->second == method;
  };
  // The baseline's run of the same target, cell and seed, as a report index (-1: none).
  const auto baseline_of = [&](const AblationRun& r) -> long {
    if (is_baseline(r.method, r.target)) return -1;
    for (const AblationRun& b : runs)
      if (b.ok && is_baseline(b.method, r.target) && b.target == r.target && b.cell == r.cell && b.seed == r.seed)
        return long(index.at(&b));
    return -1;
  };

  std::set<std::string> training_keys, targets, domains;
  bool any_deployment = false;
  for (const AblationRun& r : runs) {
    for (const auto& [k, v] : r.training) training_keys.insert(k);
    any_deployment = any_deployment || (r.ok && !r.deployment.empty());
  }
  for (const DomainFigures& f : figures) {
    for (const auto& [d, v] : f.perplexity) domains.insert(d);
    for (const auto& [d, v] : f.score) domains.insert(d);
  }
  for (Row& row : rows) {
    if (!row.target.empty()) targets.insert(row.target);
    for (const MetricDef& m : metric_defs()) {
      Cell c;
      for (const AblationRun* r : row.ok) c.per_seed.push_back(m.of(figures, index.at(r), baseline_of(*r), r->target));
      c.seeds = seed_interval(c.per_seed);
      for (double v : c.per_seed) c.n += std::isfinite(v);
      c.items = boot.interval([&](const Figures& f) {
        std::vector<double> v;
        for (const AblationRun* r : row.ok) v.push_back(m.of(f, index.at(r), baseline_of(*r), r->target));
        return seed_interval(v).value;
      });
      row.metrics[m.name] = c;
    }
    // Training and deployment figures: one value per seed, intervals over seeds only.
    const auto per_seed_cell = [&](std::map<std::string, double> AblationRun::*figures, const std::string& k) {
      Cell c;
      for (const AblationRun* r : row.ok) {
        const std::map<std::string, double>& f = r->*figures;
        c.per_seed.push_back(f.count(k) ? f.at(k) : NAN);
      }
      c.seeds = seed_interval(c.per_seed);
      c.items = {NAN, NAN, NAN};
      for (double v : c.per_seed) c.n += std::isfinite(v);
      return c;
    };
    for (const std::string& k : training_keys) row.training[k] = per_seed_cell(&AblationRun::training, k);
    if (any_deployment)
      for (const char* k : kDeploymentKeys) row.deployment[k] = per_seed_cell(&AblationRun::deployment, k);
    for (const std::string& d : domains) {
      std::vector<double> dp, ds;
      for (const AblationRun* r : row.ok) {
        const DomainFigures& f = figures[index.at(r)];
        dp.push_back(at(f.perplexity, d) / at(figures[0].perplexity, d) - 1);
        ds.push_back(at(f.score, d) - at(figures[0].score, d));
      }
      row.ppl_change[d] = seed_interval(dp).value;
      row.score_delta[d] = seed_interval(ds).value;
    }
  }

  const std::string item_note =
      boot.available() ? "" : boot.reason() + ", so there are no item-level intervals (only intervals over seeds)";
  std::vector<std::string> not_available;
  if (!any_deployment)
    not_available.push_back("exported model size, latency and peak memory: no run has RUN/deploy.json "
                            "(`gemkit ablate` measures them unless --no-deploy is given)");
  if (!plan.unfinished.empty()) {
    std::string names;
    for (const std::string& n : plan.unfinished) names += (names.empty() ? "" : ", ") + n;
    not_available.push_back(std::to_string(plan.unfinished.size()) + " run(s) not finished yet, left out of this report: " +
                            names);
  }

  // JSON.
  AblationReport out;
  json& j = out.json;
  j["gemkit_ablation"] = 1;
  j["methods"] = plan.methods;
  j["baseline"] = plan.methods[0];
  j["baselines"] = baseline_for;  // per target domain
  j["grid"] = json::object();
  for (const auto& [k, values] : plan.grid) j["grid"][k] = values;
  j["seeds"] = plan.seeds;
  j["settings"] = plan.settings;
  j["interval"] = "mean over seeds with a Student t 95% interval; item_interval: percentile bootstrap 95% over test items";
  j["item_intervals"] = boot.available();
  if (!boot.available()) j["item_intervals_note"] = item_note;
  j["base"] = {{"perplexity", figures[0].perplexity}, {"scores", figures[0].score}};
  for (const std::string& t : targets) j["base"]["target_ppl"][t] = number_or_null(at(figures[0].perplexity, t));
  j["rows"] = json::array();
  for (const Row& row : rows) {
    json r = {{"method", row.method}, {"label", row.label}, {"target", row.target}};
    r["grid"] = json::object();
    for (const auto& [k, v] : row.cell) r["grid"][k] = v;
    r["seeds"] = json::array();
    for (const AblationRun* run : row.ok) r["seeds"].push_back(run->seed);
    r["failed_seeds"] = json::array();
    for (const AblationRun* run : row.failed) r["failed_seeds"].push_back(run->seed);
    for (const auto& [k, c] : row.metrics) r["metrics"][k] = cell_json(c);
    r["training"] = json::object();
    for (const auto& [k, c] : row.training) r["training"][k] = cell_json(c);
    r["deployment"] = json::object();
    for (const auto& [k, c] : row.deployment) r["deployment"][k] = cell_json(c);
    j["rows"].push_back(r);
  }
  j["runs"] = json::array();
  for (const AblationRun& run : runs) {
    json r = {{"name", run.name}, {"method", run.method}, {"seed", run.seed}, {"target", run.target},
              {"status", run.ok ? "done" : "failed"}};
    r["grid"] = json::object();
    for (const auto& [k, v] : run.cell) r["grid"][k] = v;
    if (!run.ok) r["error"] = run.error;
    if (run.ok)
      for (const MetricDef& m : metric_defs())
        r["metrics"][m.name] = number_or_null(m.of(figures, index.at(&run), baseline_of(run), run.target));
    r["training"] = json::object();
    for (const auto& [k, v] : run.training) r["training"][k] = number_or_null(v);
    r["deployment"] = json::object();
    for (const auto& [k, v] : run.deployment) r["deployment"][k] = number_or_null(v);
    j["runs"].push_back(r);
  }
  j["transfer"] = {{"domains", domains}, {"rows", json::array()}};
  for (const Row& row : rows) {
    json t = {{"label", row.label}, {"source", row.target}};
    for (const auto& [d, v] : row.ppl_change) t["ppl_change"][d] = number_or_null(v);
    for (const auto& [d, v] : row.score_delta) t["score_delta"][d] = number_or_null(v);
    j["transfer"]["rows"].push_back(t);
  }
  j["not_available"] = not_available;

  // Markdown.
  const auto shown = [](const Cell& c, const MetricDef& m) { return interval_text(c.seeds, m.format, m.percent); };
  std::string md = "# Ablation report\n\nMethods: ";
  for (size_t i = 0; i < plan.methods.size(); ++i) md += (i ? ", " : "") + plan.methods[i];
  md += " (forgetting reduction against the first method of each target domain:";
  for (const auto& [target, method] : baseline_for) md += " " + method + " for " + target + ";";
  md.back() = ')';
  if (!plan.grid.empty()) {
    md += "; grid:";
    for (const auto& [k, values] : plan.grid) {
      md += " " + k + " in {";
      for (size_t i = 0; i < values.size(); ++i) md += (i ? ", " : "") + values[i];
      md += "}";
    }
  }
  md += "; seeds: " + std::to_string(plan.seeds) + ".\n\n";
  md += "## Base model\n\n| domain | PPL | S(m0,d) |\n|---|---|---|\n";
  for (const std::string& d : domains)
    md += "| " + d + " | " + num(at(figures[0].perplexity, d), "%.2f") + " | " + num(at(figures[0].score, d), "%.3f") +
          " |\n";
  md += "\n## Results\n\nMean over seeds [95% interval over seeds].\n\n| method | seeds | target |";
  std::string rule = "|---|---|---|";
  for (const MetricDef& m : metric_defs()) md += std::string(" ") + m.title + " |", rule += "---|";
  md += " tokens/s |\n" + rule + "---|\n";
  for (const Row& row : rows) {
    md += "| " + row.label + " | " + std::to_string(row.ok.size()) +
          (row.failed.empty() ? "" : " (" + std::to_string(row.failed.size()) + " failed)") + " | " + row.target + " |";
    for (const MetricDef& m : metric_defs()) {
      const Cell& c = row.metrics.at(m.name);
      md += " " + (m.against_baseline && is_baseline(row.method, row.target) ? "reference" : shown(c, m)) + " |";
    }
    md += " " + (row.training.count("tokens_per_s") ? interval_text(row.training.at("tokens_per_s").seeds, "%.0f") : "n/a") +
          " |\n";
  }
  md += "\nDomain gain: relative fall of the target's perplexity; general drift: relative rise of the general "
        "perplexity (forgetting); forgetting reduction: 1 - drift / drift of the target domain's baseline"
        " (same grid cell and seed); gain kept: domain gain / the baseline's domain gain (same cell and seed). S: mean task score (macro-F1 or accuracy); DSI = S(m,t)/S(m,~t); GG: relative "
        "loss of S off-target; CDTR: mean over t != target of dS(m,t)/dS(m,target), undefined when the on-target "
        "gain is below 0.01 (CDTR (PPL): the same with relative perplexity gains). n/a: undefined or missing.\n";
  std::vector<std::string> undefined;
  for (const Row& row : rows)
    if (!row.ok.empty() && row.metrics.at("CDTR").n < row.ok.size())
      undefined.push_back(row.label + ": defined in " + std::to_string(row.metrics.at("CDTR").n) + " of " +
                          std::to_string(row.ok.size()) + " seeds");
  if (!undefined.empty()) {
    md += "\nCDTR undefined (on-target task-score gain below 0.01, or no task scores):\n";
    for (const std::string& u : undefined) md += "- " + u + "\n";
  }
  md += "\n## Item-level intervals\n\n";
  if (boot.available()) {
    md += "Percentile bootstrap 95% over test items of the mean over seeds.\n\n| method |";
    std::string r2 = "|---|";
    for (const MetricDef& m : metric_defs()) md += std::string(" ") + m.title + " |", r2 += "---|";
    md += "\n" + r2 + "\n";
    for (const Row& row : rows) {
      md += "| " + row.label + " |";
      for (const MetricDef& m : metric_defs()) md += " " + interval_text(row.metrics.at(m.name).items, m.format, m.percent) + " |";
      md += "\n";
    }
  } else {
    md += "Not available: " + item_note + ".\n";
  }
  if (any_deployment) {
    md += "\n## Exported model\n\nEach run exported to the compact format (`gemkit export compact`: the hybrid "
          "policy, or the run's QAT policy) and run by `gemkit-run --bench` (1 thread, 128-token prompt of target-domain "
          "text, 64 decoded tokens, best of 3). Mean over seeds [95% interval over seeds]. Speeds are measured beside "
          "whatever else runs on the machine (other grid jobs): compare within one report.\n\n"
          "| method | file MB | decode tok/s | prompt tok/s | peak RSS MB | realised capacity |\n|---|---|---|---|---|---|\n";
    const char* formats[] = {"%.2f", "%.0f", "%.0f", "%.1f", "%.3f"};
    for (const Row& row : rows) {
      md += "| " + row.label + " |";
      for (size_t k = 0; k < 5; ++k) md += " " + interval_text(row.deployment.at(kDeploymentKeys[k]).seeds, formats[k]) + " |";
      md += "\n";
    }
  }
  bool any_stats = false;
  for (const std::string& k : training_keys) any_stats = any_stats || k != "tokens_per_s";
  if (any_stats) {
    md += "\n## Routing and preservation statistics\n\nFinal training values; eval/general/..., eval/target/...: "
          "measured by the evaluation on the general and the target domain's text (e.g. eval/general/scar/load/general: "
          "share of general text's routing decisions sent to the general expert; scar/load/target: to the run's own "
          "domain expert).\n\n| method |";
    std::string r3 = "|---|";
    for (const std::string& k : training_keys)
      if (k != "tokens_per_s") md += " " + k + " |", r3 += "---|";
    md += "\n" + r3 + "\n";
    for (const Row& row : rows) {
      md += "| " + row.label + " |";
      for (const std::string& k : training_keys)
        if (k != "tokens_per_s") md += " " + interval_text(row.training.at(k).seeds, "%.4g") + " |";
      md += "\n";
    }
  }
  md += "\n## Transfer matrix\n\nPerplexity change against the base, PPL(m,d) / PPL(m0,d) - 1, mean over seeds "
        "(rows: method and target).\n\n| method (target) |";
  std::string r4 = "|---|";
  for (const std::string& d : domains) md += " " + d + " |", r4 += "---|";
  md += "\n" + r4 + "\n";
  for (const Row& row : rows) {
    md += "| " + row.label + " (" + row.target + ") |";
    for (const std::string& d : domains) md += " " + interval_text({row.ppl_change.at(d), NAN, NAN}, "%.1f", true) + " |";
    md += "\n";
  }
  std::vector<const AblationRun*> failed;
  for (const AblationRun& r : runs)
    if (!r.ok) failed.push_back(&r);
  if (!failed.empty()) {
    md += "\n## Failed runs\n\n";
    for (const AblationRun* r : failed) md += "- " + r->name + ": " + r->error + "\n";
  }
  if (!not_available.empty()) {
    md += "\n## Not available yet\n\n";
    for (const std::string& s : not_available) md += "- " + s + "\n";
  }

  // Plots.
  PlotPanel scatter;
  scatter.title = "General drift against domain gain (mean over seeds, 95% intervals)";
  scatter.x_label = "domain gain (%)";
  scatter.y_label = "general drift (%)";
  // Over several target domains: one colour per domain, one marker shape per method within it (in
  // the order of the rows), so that e.g. every domain's fine-tuning baseline is a circle.
  std::vector<std::string> target_order;
  const auto target_colour = [&](const std::string& target) {
    const auto it = std::find(target_order.begin(), target_order.end(), target);
    if (it != target_order.end()) return int(it - target_order.begin());
    target_order.push_back(target);
    return int(target_order.size() - 1);
  };
  std::map<std::string, int> methods_seen;
  for (const Row& row : rows) {
    const Cell& g = row.metrics.at("domain_gain");
    const Cell& d = row.metrics.at("general_drift");
    // Intervals over seeds, else item-level ones.
    const Interval& gi = std::isfinite(g.seeds.low) ? g.seeds : g.items;
    const Interval& di = std::isfinite(d.seeds.low) ? d.seeds : d.items;
    PlotSeries s;
    s.name = row.label;
    s.markers = true;
    s.x = {100 * g.seeds.value};
    s.y = {100 * d.seeds.value};
    s.x_low = {100 * gi.low};
    s.x_high = {100 * gi.high};
    s.y_low = {100 * di.low};
    s.y_high = {100 * di.high};
    if (targets.size() > 1) {
      s.colour = target_colour(row.target);
      s.shape = methods_seen[row.target]++;
    }
    scatter.series.push_back(s);
  }
  PlotOptions po;
  po.panel_height = 420;
  out.plots["drift_vs_gain.svg"] = render_svg({scatter}, po);
  if (targets.size() > 1) {
    Heatmap h;
    h.title = "Transfer matrix: PPL(m,d) / PPL(m0,d) - 1";
    h.columns.assign(domains.begin(), domains.end());
    h.percent = true;
    h.note = "rows: method (target); blue: perplexity fell, red: it rose; mean over seeds";
    for (const Row& row : rows) {
      h.rows.push_back(row.label + " (" + row.target + ")");
      h.values.emplace_back();
      for (const std::string& d : domains) h.values.back().push_back(row.ppl_change.at(d));
    }
    out.plots["transfer_heatmap.svg"] = render_heatmap_svg(h);
  }
  if (any_stats) {
    std::vector<BarPanel> panels;
    for (const std::string& k : training_keys) {
      if (k == "tokens_per_s") continue;
      BarPanel p;
      p.title = k + (k.rfind("eval/", 0) == 0 ? " (measured by the evaluation" : " (final training value") + ", mean over seeds)";
      p.y_label = k;
      for (const Row& row : rows) {
        const Cell& c = row.training.at(k);
        p.labels.push_back(row.label);
        if (targets.size() > 1) p.colours.push_back(target_colour(row.target));
        p.values.push_back(c.seeds.value);
        p.low.push_back(c.seeds.low);
        p.high.push_back(c.seeds.high);
      }
      panels.push_back(p);
    }
    PlotOptions bo;
    bo.title = "Routing and preservation statistics";
    bo.panel_height = 200;
    out.plots["routing_stats.svg"] = render_bars_svg(panels, bo);
  }
  md += "\n## Plots\n\n";
  for (const auto& [file, svg] : out.plots) md += "- [" + file + "](" + file + ")\n";
  j["plots"] = json::array();
  for (const auto& [file, svg] : out.plots) j["plots"].push_back(file);
  out.markdown = md;

  // CSV: one line per row; for each figure its mean, interval over seeds and item-level interval.
  std::string csv = "method,grid,target,seeds,failed_seeds";
  for (const MetricDef& m : metric_defs())
    for (const char* suffix : {"", "_low", "_high", "_item_low", "_item_high"}) csv += "," + std::string(m.name) + suffix;
  for (const std::string& k : training_keys)
    for (const char* suffix : {"", "_low", "_high"}) csv += "," + k + suffix;
  if (any_deployment)
    for (const char* k : kDeploymentKeys)
      for (const char* suffix : {"", "_low", "_high"}) csv += ",deployment/" + std::string(k) + suffix;
  csv += "\n";
  const auto quoted = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const Row& row : rows) {
    csv += quoted(row.method) + "," + quoted(cell_text(row.cell, ";")) + "," + quoted(row.target) + "," +
           std::to_string(row.ok.size()) + "," + std::to_string(row.failed.size());
    for (const MetricDef& m : metric_defs()) {
      const Cell& c = row.metrics.at(m.name);
      for (double v : {c.seeds.value, c.seeds.low, c.seeds.high, c.items.low, c.items.high}) csv += "," + num(v);
    }
    for (const std::string& k : training_keys) {
      const Cell& c = row.training.at(k);
      for (double v : {c.seeds.value, c.seeds.low, c.seeds.high}) csv += "," + num(v);
    }
    if (any_deployment)
      for (const char* k : kDeploymentKeys) {
        const Cell& c = row.deployment.at(k);
        for (double v : {c.seeds.value, c.seeds.low, c.seeds.high}) csv += "," + num(v);
      }
    csv += "\n";
  }
  out.csv = csv;
  return out;
}

void write_ablation_report(const AblationReport& report, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  const std::filesystem::path dir(out_dir);
  write_text_file_atomic((dir / "report.json").string(), report.json.dump(2) + "\n");
  write_text_file_atomic((dir / "report.csv").string(), report.csv);
  write_text_file_atomic((dir / "report.md").string(), report.markdown);
  for (const auto& [file, svg] : report.plots) write_text_file_atomic((dir / file).string(), svg);
}

}  // namespace gemkit::eval
