#include "report/ablation_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/file_io.h"
#include "report/ablation_rows.h"
#include "report/interval_format.h"
#include "report/pareto.h"
#include "report/svg_plot.h"

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

std::string num(double v, const char* f = "%.6g") { return number_text(v, f, ""); }

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json cell_json(const Cell& c) {
  json j = {{"mean", number_or_null(c.seeds.value)}, {"low", number_or_null(c.seeds.low)},
            {"high", number_or_null(c.seeds.high)}, {"n", c.n}};
  j["per_seed"] = json::array();
  for (double v : c.per_seed) j["per_seed"].push_back(number_or_null(v));
  if (std::isfinite(c.items.low)) j["item_interval"] = {c.items.low, c.items.high};
  return j;
}

// What the report cannot show yet, and why (JSON "not_available", markdown "Not available yet").
std::vector<std::string> not_available(const AblationTable& t, const AblationPlan& plan) {
  std::vector<std::string> out;
  if (!t.any_deployment)
    out.push_back("exported model size, latency and peak memory: no run has RUN/deploy.json "
                  "(`gemkit ablate` measures them unless --no-deploy is given)");
  if (!plan.unfinished.empty()) {
    std::string names;
    for (const std::string& n : plan.unfinished) names += (names.empty() ? "" : ", ") + n;
    out.push_back(std::to_string(plan.unfinished.size()) + " run(s) not finished yet, left out of this report: " + names);
  }
  return out;
}

// report.json: the plan, the base's figures, every row and every run, the transfer rows.
json ablation_json(const AblationTable& t, const AblationPlan& plan, const std::vector<AblationRun>& runs,
                   const std::vector<std::string>& notes) {
  json j;
  j["gemkit_ablation"] = 1;
  j["methods"] = plan.methods;
  j["baseline"] = plan.methods[0];
  j["baselines"] = t.baseline_for;  // per target domain
  j["grid"] = json::object();
  for (const auto& [k, values] : plan.grid) j["grid"][k] = values;
  j["seeds"] = plan.seeds;
  j["settings"] = plan.settings;
  j["interval"] = "mean over seeds with a Student t 95% interval; item_interval: percentile bootstrap 95% over test items";
  j["item_intervals"] = t.item_intervals;
  if (!t.item_intervals) j["item_intervals_note"] = t.item_note;
  j["base"] = {{"perplexity", t.figures[0].perplexity}, {"scores", t.figures[0].score}};
  for (const std::string& target : t.targets)
    j["base"]["target_ppl"][target] = number_or_null(value_or_nan(t.figures[0].perplexity, target));
  j["rows"] = json::array();
  for (const Row& row : t.rows) {
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
    const RowTradeoff& to = row.tradeoff;
    r["tradeoff"] = {{"others_frontier_rise", number_or_null(to.frontier_rise)},
                     {"rise_ratio", number_or_null(to.rise_ratio)}, {"beyond_others", to.beyond},
                     {"on_frontier_of_all", to.on_front}, {"seeds_beyond", to.seeds_beyond},
                     {"seeds_compared", to.seeds_compared}};
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
      for (const MetricDef& m : metric_defs()) r["metrics"][m.name] = number_or_null(t.metric(m, run));
    r["training"] = json::object();
    for (const auto& [k, v] : run.training) r["training"][k] = number_or_null(v);
    r["deployment"] = json::object();
    for (const auto& [k, v] : run.deployment) r["deployment"][k] = number_or_null(v);
    j["runs"].push_back(r);
  }
  j["transfer"] = {{"domains", t.domains}, {"rows", json::array()}};
  for (const Row& row : t.rows) {
    json tr = {{"label", row.label}, {"source", row.target}};
    for (const auto& [d, v] : row.nll_change) tr["nll_rise"][d] = number_or_null(v);
    for (const auto& [d, v] : row.ppl_change) tr["ppl_change"][d] = number_or_null(v);
    for (const auto& [d, v] : row.score_delta) tr["score_delta"][d] = number_or_null(v);
    j["transfer"]["rows"].push_back(tr);
  }
  j["not_available"] = notes;
  return j;
}

// Whether the report has routing or preservation statistics (training keys besides tokens/s).
bool any_statistics(const AblationTable& t) {
  bool any_stats = false;
  for (const std::string& k : t.training_keys) any_stats = any_stats || k != "tokens_per_s";
  return any_stats;
}

// The trade-off table: per target domain, each row's mean (G, R_off) against the frontier of the
// other recipes' rows.
std::string tradeoff_markdown(const AblationTable& t) {
  std::string md =
      "\n## Trade-off: domain gain against off-target forgetting\n\nEach row as the point (NLL gain, off-target "
      "rise), mean over seeds [95% interval over seeds]. Frontier of the others: the Pareto frontier of the rows of "
      "the same target from other recipes (a recipe's WiSE-FT rows count as that recipe), with the base model at "
      "(0, 0), joined by straight lines, read at this row's gain (n/a past their largest gain). Ratio: this row's "
      "rise / that frontier's. Beyond: below the others' frontier (or past their largest gain, undominated); per "
      "seed: each seed's runs against the same seed's runs of the others. Plot: tradeoff.svg.\n";
  for (const std::string& target : t.targets) {
    md += "\n### " + target + "\n\n| method | NLL gain | off-target rise | general probe rise | others' frontier "
          "at this gain | ratio | beyond the others | seeds beyond | on the frontier of all |\n"
          "|---|---|---|---|---|---|---|---|---|\n";
    for (const Row& row : t.rows) {
      if (row.target != target || row.ok.empty()) continue;
      const RowTradeoff& to = row.tradeoff;
      md += "| " + row.label + " | " + interval_text(row.metrics.at("nll_gain").seeds, "%+.4f") + " | " +
            interval_text(row.metrics.at("off_target_rise").seeds, "%+.4f") + " | " +
            interval_text(row.metrics.at("probe_rise").seeds, "%+.4f") + " | " + number_text(to.frontier_rise, "%+.4f") +
            " | " + number_text(to.rise_ratio, "%.2f") + " | " + (to.beyond ? "yes" : "no") + " | " +
            std::to_string(to.seeds_beyond) + " of " + std::to_string(to.seeds_compared) + " | " +
            (to.on_front ? "yes" : "no") + " |\n";
    }
  }
  return md;
}

// report.md: the plan, the base model, the results with intervals over seeds and over items,
// the exported models, the routing statistics, the transfer matrix, failed and missing runs,
// and links to the plots.
std::string ablation_markdown(const AblationTable& t, const AblationPlan& plan, const std::vector<AblationRun>& runs,
                              const std::vector<std::string>& notes, const std::map<std::string, std::string>& plots) {
  const auto shown = [](const Cell& c, const MetricDef& m) { return interval_text(c.seeds, m.format, m.percent); };
  std::string md = "# Ablation report\n\nMethods: ";
  for (size_t i = 0; i < plan.methods.size(); ++i) md += (i ? ", " : "") + plan.methods[i];
  md += " (forgetting reduction against the first method of each target domain:";
  for (const auto& [target, method] : t.baseline_for) md += " " + method + " for " + target + ";";
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
  for (const std::string& d : t.domains)
    md += "| " + d + " | " + num(value_or_nan(t.figures[0].perplexity, d), "%.2f") + " | " +
          num(value_or_nan(t.figures[0].score, d), "%.3f") + " |\n";
  md += "\n## Results\n\nMean over seeds [95% interval over seeds].\n\n| method | seeds | target |";
  std::string rule = "|---|---|---|";
  for (const MetricDef& m : metric_defs()) md += std::string(" ") + m.title + " |", rule += "---|";
  md += " tokens/s |\n" + rule + "---|\n";
  for (const Row& row : t.rows) {
    md += "| " + row.label + " | " + std::to_string(row.ok.size()) +
          (row.failed.empty() ? "" : " (" + std::to_string(row.failed.size()) + " failed)") + " | " + row.target + " |";
    for (const MetricDef& m : metric_defs()) {
      const Cell& c = row.metrics.at(m.name);
      md += " " + (m.against_baseline && t.is_baseline(row.method, row.target) ? "reference" : shown(c, m)) + " |";
    }
    md += " " + (row.training.count("tokens_per_s") ? interval_text(row.training.at("tokens_per_s").seeds, "%.0f") : "n/a") +
          " |\n";
  }
  md += "\nIn nats of mean token NLL: NLL gain G = the fall on the target; off-target rise R_off = the mean rise "
        "over every domain but the target and the replayed general corpus (the held-out general probe included); "
        "general probe rise: general English that no method trains on; general (replayed) rise: the corpus replay "
        "trains on, shown apart. Gain kept: G / the baseline's G; forgetting reduction: 1 - R_off / the "
        "baseline's R_off (baseline: the target domain's first method, same grid cell and seed; n/a when the "
        "baseline did not gain, or did not forget). Perplexity forms: domain gain = relative fall of the target's "
        "perplexity, general drift = relative rise of the general perplexity. S: mean task score (macro-F1 or "
        "accuracy); DSI = S(m,t)/S(m,~t); GG: relative loss of S off-target; CDTR: mean over t != target of "
        "dS(m,t)/dS(m,target), undefined when the on-target gain is below 0.01 (CDTR (PPL): the same with relative "
        "perplexity gains). n/a: undefined or missing; an interval is n/a when the figure is undefined on a seed "
        "or a resample.\n";
  std::vector<std::string> undefined;
  for (const Row& row : t.rows)
    if (!row.ok.empty() && row.metrics.at("CDTR").n < row.ok.size())
      undefined.push_back(row.label + ": defined in " + std::to_string(row.metrics.at("CDTR").n) + " of " +
                          std::to_string(row.ok.size()) + " seeds");
  if (!undefined.empty()) {
    md += "\nCDTR undefined (on-target task-score gain below 0.01, or no task scores):\n";
    for (const std::string& u : undefined) md += "- " + u + "\n";
  }
  md += tradeoff_markdown(t);
  md += "\n## Item-level intervals\n\n";
  if (t.item_intervals) {
    md += "Percentile bootstrap 95% over test items of the mean over seeds.\n\n| method |";
    std::string r2 = "|---|";
    for (const MetricDef& m : metric_defs()) md += std::string(" ") + m.title + " |", r2 += "---|";
    md += "\n" + r2 + "\n";
    for (const Row& row : t.rows) {
      md += "| " + row.label + " |";
      for (const MetricDef& m : metric_defs()) md += " " + interval_text(row.metrics.at(m.name).items, m.format, m.percent) + " |";
      md += "\n";
    }
  } else {
    md += "Not available: " + t.item_note + ".\n";
  }
  if (t.any_deployment) {
    md += "\n## Exported model\n\nEach run exported to the compact format (`gemkit export compact`: the hybrid "
          "policy, or the run's QAT policy) and run by `gemkit-run --bench` (1 thread, 128-token prompt of target-domain "
          "text, 64 decoded tokens, best of 3). Mean over seeds [95% interval over seeds]. Speeds are measured beside "
          "whatever else runs on the machine (other grid jobs): compare within one report.\n\n"
          "| method | file MB | decode tok/s | prompt tok/s | peak RSS MB | realised capacity |\n|---|---|---|---|---|---|\n";
    const char* formats[] = {"%.2f", "%.0f", "%.0f", "%.1f", "%.3f"};
    for (const Row& row : t.rows) {
      md += "| " + row.label + " |";
      for (size_t k = 0; k < 5; ++k) md += " " + interval_text(row.deployment.at(kDeploymentKeys[k]).seeds, formats[k]) + " |";
      md += "\n";
    }
  }
  if (any_statistics(t)) {
    md += "\n## Routing and preservation statistics\n\nFinal training values; eval/general/..., eval/target/...: "
          "measured by the evaluation on the general and the target domain's text (e.g. eval/general/scar/load/general: "
          "share of general text's routing decisions sent to the general expert; scar/load/target: to the run's own "
          "domain expert).\n\n| method |";
    std::string r3 = "|---|";
    for (const std::string& k : t.training_keys)
      if (k != "tokens_per_s") md += " " + k + " |", r3 += "---|";
    md += "\n" + r3 + "\n";
    for (const Row& row : t.rows) {
      md += "| " + row.label + " |";
      for (const std::string& k : t.training_keys)
        if (k != "tokens_per_s") md += " " + interval_text(row.training.at(k).seeds, "%.4g") + " |";
      md += "\n";
    }
  }
  md += "\n## Transfer matrix\n\nNLL rise against the base, R(m,d) = L(m,d) - L(m0,d) in nats (negative: the "
        "model improved there), mean over seeds (rows: method and target; the perplexity form is in report.json).\n\n"
        "| method (target) |";
  std::string r4 = "|---|";
  for (const std::string& d : t.domains) md += " " + d + " |", r4 += "---|";
  md += "\n" + r4 + "\n";
  for (const Row& row : t.rows) {
    md += "| " + row.label + " (" + row.target + ") |";
    for (const std::string& d : t.domains) md += " " + interval_text({row.nll_change.at(d), NAN, NAN}, "%+.4f") + " |";
    md += "\n";
  }
  std::vector<const AblationRun*> failed;
  for (const AblationRun& r : runs)
    if (!r.ok) failed.push_back(&r);
  if (!failed.empty()) {
    md += "\n## Failed runs\n\n";
    for (const AblationRun* r : failed) md += "- " + r->name + ": " + r->error + "\n";
  }
  if (!notes.empty()) {
    md += "\n## Not available yet\n\n";
    for (const std::string& s : notes) md += "- " + s + "\n";
  }
  md += "\n## Plots\n\n";
  for (const auto& [file, svg] : plots) md += "- [" + file + "](" + file + ")\n";
  return md;
}

// The SVG plots by file name: tradeoff.svg always, transfer_heatmap.svg over several target
// domains, routing_stats.svg when there are routing or preservation statistics.
std::map<std::string, std::string> ablation_plots(const AblationTable& t) {
  std::map<std::string, std::string> plots;
  // One colour per target domain in the other plots, in order of first appearance.
  std::vector<std::string> target_order;
  const auto target_colour = [&](const std::string& target) {
    const auto it = std::find(target_order.begin(), target_order.end(), target);
    if (it != target_order.end()) return int(it - target_order.begin());
    target_order.push_back(target);
    return int(target_order.size() - 1);
  };
  // The trade-off plane, one panel per target domain: every row with its intervals over seeds
  // (else item-level ones) and the Pareto frontier of all rows (the base at (0, 0) included).
  std::vector<PlotPanel> panels;
  for (const std::string& target : t.targets) {
    PlotPanel panel;
    panel.title = target + ": off-target NLL rise against target NLL gain (mean over seeds, 95% intervals)";
    panel.x_label = "NLL gain on " + target + " (nats)";
    panel.y_label = "off-target NLL rise (nats)";
    std::vector<TradeoffPoint> points{{0.0, 0.0}};
    for (const Row& row : t.rows) {
      if (row.target != target || row.ok.empty()) continue;
      const Cell& g = row.metrics.at("nll_gain");
      const Cell& r = row.metrics.at("off_target_rise");
      const Interval& gi = std::isfinite(g.seeds.low) ? g.seeds : g.items;
      const Interval& ri = std::isfinite(r.seeds.low) ? r.seeds : r.items;
      PlotSeries s;
      s.name = row.label;
      s.markers = true;
      s.x = {g.seeds.value};
      s.y = {r.seeds.value};
      s.x_low = {gi.low};
      s.x_high = {gi.high};
      s.y_low = {ri.low};
      s.y_high = {ri.high};
      panel.series.push_back(s);
      points.push_back({g.seeds.value, r.seeds.value});
    }
    // A recipe with WiSE-FT rows is a curve: the base (a = 0), its interpolations, the run (a = 1).
    std::map<std::string, std::vector<std::pair<double, TradeoffPoint>>> sweeps;
    for (const Row& row : t.rows) {
      if (row.target != target || row.ok.empty()) continue;
      const size_t at = row.method.find("+wise");
      const double a = at == std::string::npos ? 1.0 : std::atof(row.method.c_str() + at + 5);
      sweeps[method_family(row.method)].push_back(
          {a, {row.metrics.at("nll_gain").seeds.value, row.metrics.at("off_target_rise").seeds.value}});
    }
    for (auto& [family, points] : sweeps) {
      if (points.size() < 2) continue;
      points.push_back({0.0, {0.0, 0.0}});
      std::sort(points.begin(), points.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
      PlotSeries curve;
      curve.name = family + ": WiSE-FT a = 0 .. 1";
      for (const auto& [a, p] : points) curve.x.push_back(p.gain), curve.y.push_back(p.rise);
      panel.series.push_back(curve);
    }
    PlotSeries front;
    front.name = "Pareto frontier (all, base at 0)";
    for (size_t i : pareto_front(points)) front.x.push_back(points[i].gain), front.y.push_back(points[i].rise);
    panel.series.push_back(front);
    panels.push_back(panel);
  }
  PlotOptions po;
  po.panel_height = 420;
  plots["tradeoff.svg"] = render_svg(panels, po);

  if (t.targets.size() > 1) {
    Heatmap h;
    h.title = "Transfer matrix: NLL rise L(m,d) - L(m0,d), nats";
    h.columns.assign(t.domains.begin(), t.domains.end());
    h.note = "rows: method (target); blue: the loss fell, red: it rose; mean over seeds";
    for (const Row& row : t.rows) {
      h.rows.push_back(row.label + " (" + row.target + ")");
      h.values.emplace_back();
      for (const std::string& d : t.domains) h.values.back().push_back(row.nll_change.at(d));
    }
    plots["transfer_heatmap.svg"] = render_heatmap_svg(h);
  }
  if (any_statistics(t)) {
    std::vector<BarPanel> panels;
    for (const std::string& k : t.training_keys) {
      if (k == "tokens_per_s") continue;
      BarPanel p;
      p.title = k + (k.rfind("eval/", 0) == 0 ? " (measured by the evaluation" : " (final training value") + ", mean over seeds)";
      p.y_label = k;
      for (const Row& row : t.rows) {
        const Cell& c = row.training.at(k);
        p.labels.push_back(row.label);
        if (t.targets.size() > 1) p.colours.push_back(target_colour(row.target));
        p.values.push_back(c.seeds.value);
        p.low.push_back(c.seeds.low);
        p.high.push_back(c.seeds.high);
      }
      panels.push_back(p);
    }
    PlotOptions bo;
    bo.title = "Routing and preservation statistics";
    bo.panel_height = 200;
    plots["routing_stats.svg"] = render_bars_svg(panels, bo);
  }
  return plots;
}

// report.csv: one line per row; for each figure its mean, interval over seeds and item-level interval.
std::string ablation_csv(const AblationTable& t) {
  std::string csv = "method,grid,target,seeds,failed_seeds";
  for (const MetricDef& m : metric_defs())
    for (const char* suffix : {"", "_low", "_high", "_item_low", "_item_high"}) csv += "," + std::string(m.name) + suffix;
  for (const std::string& k : t.training_keys)
    for (const char* suffix : {"", "_low", "_high"}) csv += "," + k + suffix;
  if (t.any_deployment)
    for (const char* k : kDeploymentKeys)
      for (const char* suffix : {"", "_low", "_high"}) csv += ",deployment/" + std::string(k) + suffix;
  csv += "\n";
  const auto quoted = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const Row& row : t.rows) {
    csv += quoted(row.method) + "," + quoted(grid_cell_text(row.cell, ";")) + "," + quoted(row.target) + "," +
           std::to_string(row.ok.size()) + "," + std::to_string(row.failed.size());
    for (const MetricDef& m : metric_defs()) {
      const Cell& c = row.metrics.at(m.name);
      for (double v : {c.seeds.value, c.seeds.low, c.seeds.high, c.items.low, c.items.high}) csv += "," + num(v);
    }
    for (const std::string& k : t.training_keys) {
      const Cell& c = row.training.at(k);
      for (double v : {c.seeds.value, c.seeds.low, c.seeds.high}) csv += "," + num(v);
    }
    if (t.any_deployment)
      for (const char* k : kDeploymentKeys) {
        const Cell& c = row.deployment.at(k);
        for (double v : {c.seeds.value, c.seeds.low, c.seeds.high}) csv += "," + num(v);
      }
    csv += "\n";
  }
  return csv;
}

}  // namespace

AblationReport ablation_report(const AblationPlan& plan, const json& base_eval, const std::vector<AblationRun>& runs,
                               const BootstrapOptions& options) {
  const AblationTable table = ablation_table(plan, base_eval, runs, options);
  const std::vector<std::string> notes = not_available(table, plan);
  AblationReport out;
  out.json = ablation_json(table, plan, runs, notes);
  out.plots = ablation_plots(table);
  out.json["plots"] = json::array();
  for (const auto& [file, svg] : out.plots) out.json["plots"].push_back(file);
  out.markdown = ablation_markdown(table, plan, runs, notes, out.plots);
  out.csv = ablation_csv(table);
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
