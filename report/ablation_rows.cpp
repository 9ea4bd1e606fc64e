#include "report/ablation_rows.h"

#include <cmath>

#include "core/error.h"
#include "eval/item_bootstrap.h"
#include "eval/seed_interval.h"
#include "eval/transfer.h"

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

// Prefixes of the routing and preservation metrics that metrics.jsonl may carry.
const char* const kTrainingPrefixes[] = {"dtr/", "scar/", "akp/"};

// Rows: method-major, then the grid cells in order; each with the runs of its method and cell,
// finished or failed, and the target domain of its first run.
std::vector<Row> group_rows(const AblationPlan& plan, const std::vector<AblationRun>& runs) {
  std::vector<Row> rows;
  const std::vector<GridCell> cells = grid_cells(plan.grid);
  for (const std::string& method : plan.methods)
    for (const auto& cell : cells) {
      Row row;
      row.method = method;
      row.cell = cell;
      row.label = method + (cell.empty() ? "" : " [" + grid_cell_text(cell, ", ") + "]");
      for (const AblationRun& r : runs)
        if (r.method == method && r.cell == cell) {
          (r.ok ? row.ok : row.failed).push_back(&r);
          if (row.target.empty()) row.target = r.target;
        }
      rows.push_back(std::move(row));
    }
  return rows;
}

// Each target domain's baseline: the first method (in command-line order) adapting to it, so
// one grid can hold several domains, each with its own plain fine-tuning.
std::map<std::string, std::string> baselines(const AblationPlan& plan, const std::vector<AblationRun>& runs) {
  std::map<std::string, std::string> baseline_for;
  for (const std::string& m : plan.methods)
    for (const AblationRun& r : runs)
      if (r.method == m && !baseline_for.count(r.target)) baseline_for[r.target] = m;
  return baseline_for;
}

// A section-6 figure of a row: per seed, the mean with its interval over seeds, and the
// item-level interval of that mean.
Cell metric_cell(const AblationTable& t, const ItemBootstrap& boot, const Row& row, const MetricDef& m) {
  Cell c;
  for (const AblationRun* r : row.ok) c.per_seed.push_back(t.metric(m, *r));
  c.seeds = seed_interval(c.per_seed);
  for (double v : c.per_seed) c.n += std::isfinite(v);
  c.items = boot.interval([&](const Figures& f) {
    std::vector<double> v;
    for (const AblationRun* r : row.ok) v.push_back(m.of(f, t.index.at(r), t.baseline_of(*r), r->target));
    return seed_interval(v).value;
  });
  return c;
}

// Training and deployment figures: one value per seed, intervals over seeds only.
Cell per_seed_cell(const Row& row, std::map<std::string, double> AblationRun::*figures, const std::string& k) {
  Cell c;
  for (const AblationRun* r : row.ok) {
    const std::map<std::string, double>& f = r->*figures;
    c.per_seed.push_back(f.count(k) ? f.at(k) : NAN);
  }
  c.seeds = seed_interval(c.per_seed);
  c.items = {NAN, NAN, NAN};
  for (double v : c.per_seed) c.n += std::isfinite(v);
  return c;
}

// The row's transfer entries: per domain, the mean over seeds of the NLL rise R(m,d), of the
// relative perplexity change and of the task-score change against the base.
void transfer_row(const AblationTable& t, Row& row) {
  for (const std::string& d : t.domains) {
    std::vector<double> dn, dp, ds;
    for (const AblationRun* r : row.ok) {
      const DomainFigures& f = t.figures[t.index.at(r)];
      dn.push_back(nll_rise(t.figures[0], f, d));
      dp.push_back(value_or_nan(f.perplexity, d) / value_or_nan(t.figures[0].perplexity, d) - 1);
      ds.push_back(value_or_nan(f.score, d) - value_or_nan(t.figures[0].score, d));
    }
    row.nll_change[d] = seed_interval(dn).value;
    row.ppl_change[d] = seed_interval(dp).value;
    row.score_delta[d] = seed_interval(ds).value;
  }
}

const MetricDef& metric_def(const std::string& name) {
  for (const MetricDef& m : metric_defs())
    if (name == m.name) return m;
  fail("ablation report", "no metric " + name);
}

// Every row's place in the trade-off plane, against the rows of its target from other recipes.
void tradeoffs(AblationTable& t) {
  const MetricDef& gain = metric_def("nll_gain");
  const MetricDef& rise = metric_def("off_target_rise");
  const auto mean_point = [](const Row& r) {
    return TradeoffPoint{r.metrics.at("nll_gain").seeds.value, r.metrics.at("off_target_rise").seeds.value};
  };
  for (Row& row : t.rows) {
    if (row.ok.empty()) continue;
    std::vector<TradeoffPoint> others, all;
    size_t self = 0;
    for (const Row& o : t.rows) {
      if (o.ok.empty() || o.target != row.target) continue;
      if (&o == &row) self = all.size();
      all.push_back(mean_point(o));
      if (method_family(o.method) != method_family(row.method)) others.push_back(mean_point(o));
    }
    const FrontierPosition pos = frontier_position(mean_point(row), others);
    RowTradeoff& out = row.tradeoff;
    out.frontier_rise = pos.frontier_rise;
    out.rise_ratio = pos.rise_ratio;
    out.beyond = pos.beyond;
    for (size_t i : pareto_front(all)) out.on_front = out.on_front || i == self;
    // Seed by seed: this row's run of seed s against the others' runs of seed s.
    for (const AblationRun* r : row.ok) {
      std::vector<TradeoffPoint> seed_others;
      for (const Row& o : t.rows)
        if (o.target == row.target && method_family(o.method) != method_family(row.method))
          for (const AblationRun* q : o.ok)
            if (q->seed == r->seed) seed_others.push_back({t.metric(gain, *q), t.metric(rise, *q)});
      if (seed_others.empty()) continue;
      ++out.seeds_compared;
      out.seeds_beyond += frontier_position({t.metric(gain, *r), t.metric(rise, *r)}, seed_others).beyond;
    }
  }
}

}  // namespace

std::string method_family(const std::string& method) { return method.substr(0, method.find('+')); }

const std::vector<MetricDef>& metric_defs() {
  // Loss-form figures first (the headline, gem-method.md section 6), then the perplexity forms.
  const auto six = [](const Figures& f, size_t r, const std::string& t) { return section_six(f[0], f[r], t); };
  static const std::vector<MetricDef> defs = {
      {"target_nll", "target NLL", "%.4f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return std::log(value_or_nan(f[r].perplexity, t)); }},
      {"nll_gain", "NLL gain", "%+.4f", false,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).nll_gain; }},
      {"off_target_rise", "off-target rise", "%+.4f", false,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).off_target_rise; }},
      {"probe_rise", "general probe rise", "%+.4f", false,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).probe_rise; }},
      {"general_rise", "general (replayed) rise", "%+.4f", false,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).general_rise; }},
      {"gain_kept", "gain kept", "%.1f", true,
       [six](const Figures& f, size_t r, long b, const std::string& t) {
         return b < 0 ? double(NAN) : gain_kept(six(f, r, t).nll_gain, six(f, size_t(b), t).nll_gain);
       },
       true},
      {"forgetting_reduction", "forgetting reduction", "%.1f", true,
       [six](const Figures& f, size_t r, long b, const std::string& t) {
         return b < 0 ? double(NAN)
                      : forgetting_reduction(six(f, r, t).off_target_rise, six(f, size_t(b), t).off_target_rise);
       },
       true},
      {"target_ppl", "target PPL", "%.2f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return value_or_nan(f[r].perplexity, t); }},
      {"domain_gain", "domain gain (PPL)", "%.1f", true,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).domain_gain; }},
      {"general_ppl", "general PPL", "%.2f", false,
       [](const Figures& f, size_t r, long, const std::string&) { return value_or_nan(f[r].perplexity, kGeneralDomain); }},
      {"general_drift", "general drift (PPL)", "%.1f", true,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).general_drift; }},
      {"gain_kept_ppl", "gain kept (PPL)", "%.1f", true,
       [six](const Figures& f, size_t r, long b, const std::string& t) {
         return b < 0 ? double(NAN) : gain_kept(six(f, r, t).domain_gain, six(f, size_t(b), t).domain_gain);
       },
       true},
      {"S_target", "S(m,t)", "%.3f", false,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).S_target; }},
      {"S_other", "S(m,~t)", "%.3f", false,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).S_other; }},
      {"DSI", "DSI", "%.3f", false,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).DSI; }},
      {"GG", "GG", "%.1f", true,
       [six](const Figures& f, size_t r, long, const std::string& t) { return six(f, r, t).GG; }},
      {"CDTR", "CDTR", "%.3f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return cdtr(f[0], f[r], t); }},
      {"CDTR_ppl", "CDTR (PPL)", "%.3f", false,
       [](const Figures& f, size_t r, long, const std::string& t) { return cdtr_ppl(f[0], f[r], t); }},
  };
  return defs;
}

std::string grid_cell_text(const GridCell& cell, const char* sep) {
  std::string s;
  for (const auto& [k, v] : cell) s += (s.empty() ? "" : sep) + k + "=" + v;
  return s;
}

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

bool AblationTable::is_baseline(const std::string& method, const std::string& target) const {
  auto it = baseline_for.find(target);
  return it != baseline_for.end() && it->second == method;
}

long AblationTable::baseline_of(const AblationRun& r) const {
  if (is_baseline(r.method, r.target)) return -1;
  for (const AblationRun& b : *runs)
    if (b.ok && is_baseline(b.method, r.target) && b.target == r.target && b.cell == r.cell && b.seed == r.seed)
      return long(index.at(&b));
  return -1;
}

double AblationTable::metric(const MetricDef& m, const AblationRun& r) const {
  return m.of(figures, index.at(&r), baseline_of(r), r.target);
}

AblationTable ablation_table(const AblationPlan& plan, const json& base_eval, const std::vector<AblationRun>& runs,
                             const BootstrapOptions& options) {
  if (plan.methods.empty()) fail("ablation report", "no methods");
  AblationTable t;
  t.runs = &runs;
  // The reports: the base first, then every finished run's.
  std::vector<LabelledReport> reports{{"base", base_eval}};
  for (const AblationRun& r : runs)
    if (r.ok) {
      t.index[&r] = reports.size();
      reports.push_back({r.name, r.eval});
    }
  const ItemBootstrap boot(reports, options);  // checks every report
  for (const LabelledReport& r : reports) t.figures.push_back(domain_figures(r));
  t.rows = group_rows(plan, runs);
  t.baseline_for = baselines(plan, runs);

  for (const AblationRun& r : runs) {
    for (const auto& [k, v] : r.training) t.training_keys.insert(k);
    t.any_deployment = t.any_deployment || (r.ok && !r.deployment.empty());
  }
  for (const DomainFigures& f : t.figures) {
    for (const auto& [d, v] : f.perplexity) t.domains.insert(d);
    for (const auto& [d, v] : f.score) t.domains.insert(d);
  }
  for (Row& row : t.rows) {
    if (!row.target.empty()) t.targets.insert(row.target);
    for (const MetricDef& m : metric_defs()) row.metrics[m.name] = metric_cell(t, boot, row, m);
    for (const std::string& k : t.training_keys) row.training[k] = per_seed_cell(row, &AblationRun::training, k);
    if (t.any_deployment)
      for (const char* k : kDeploymentKeys) row.deployment[k] = per_seed_cell(row, &AblationRun::deployment, k);
    transfer_row(t, row);
  }
  tradeoffs(t);
  t.item_intervals = boot.available();
  if (!t.item_intervals) t.item_note = boot.reason() + ", so there are no item-level intervals (only intervals over seeds)";
  return t;
}

}  // namespace gemkit::eval
