#include "report/compare_report.h"

#include <cmath>
#include <cstdio>

#include "report/interval_format.h"

namespace gemkit {
namespace {

using json = nlohmann::json;

std::string fmt(double v, const char* f = "%.2f") { return eval::number_text(v, f); }

std::string pct(double v) { return std::isfinite(v) ? fmt(100 * v, "%+.1f%%") : "n/a"; }

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

double perplexity_of(const ComparedRun& run, const std::string& d) {
  return run.perplexity.count(d) ? run.perplexity.at(d) : NAN;
}

// "0.36 [0.16, 0.56]", or n/a where the report has no such task.
std::string task_cell(const ComparedRun& run, const std::string& key) {
  if (!run.tasks.count(key)) return "n/a";
  const TaskScore& t = run.tasks.at(key);
  if (!std::isfinite(t.value)) return "n/a";
  return fmt(t.value, "%.3f") + " [" + fmt(t.low, "%.2f") + ", " + fmt(t.high, "%.2f") + "]";
}

}  // namespace

json to_json(const ComparisonFigures& c) {
  json j;
  for (const std::string& d : c.domains)
    for (const ComparedRun& run : c.runs) j["perplexity"][d][run.label] = number_or_null(perplexity_of(run, d));
  for (const ComparedRun& run : c.runs) {
    json& s = j["summary"][run.label];
    s["nll_gain"] = number_or_null(run.six.nll_gain);
    s["off_target_rise"] = number_or_null(run.six.off_target_rise);
    s["probe_rise"] = number_or_null(run.six.probe_rise);
    s["general_rise"] = number_or_null(run.six.general_rise);
    s["gain_kept_vs_" + c.runs[1].label] = number_or_null(run.gain_kept);
    s["forgetting_reduction_vs_" + c.runs[1].label] = number_or_null(run.forgetting_reduction);
    s["domain_gain"] = number_or_null(run.six.domain_gain);
    s["general_drift"] = number_or_null(run.six.general_drift);
    s["S_target"] = number_or_null(run.six.S_target);
    s["S_other"] = number_or_null(run.six.S_other);
    s["DSI"] = number_or_null(run.six.DSI);
    s["GG"] = number_or_null(run.six.GG);
  }
  for (const std::string& key : c.task_keys)
    for (const ComparedRun& run : c.runs) {
      if (!run.tasks.count(key)) continue;
      const TaskScore& t = run.tasks.at(key);
      j["tasks"][key][run.label] = {{"metric", t.metric}, {"method", t.method}, {"value", number_or_null(t.value)},
                                    {"low", number_or_null(t.low)}, {"high", number_or_null(t.high)}};
    }
  j["target"] = c.target;
  return j;
}

std::string to_markdown(const ComparisonFigures& c) {
  const std::vector<ComparedRun>& runs = c.runs;
  std::string md = "Perplexity per domain (change against " + runs[0].label + "; target: " + c.target + ")\n\n| domain |";
  std::string rule = "|---|";
  for (size_t i = 0; i < runs.size(); ++i) {
    md += " " + runs[i].label + " |" + (i ? " change |" : "");
    rule += i ? "---|---|" : "---|";
  }
  md += "\n" + rule + "\n";
  for (const std::string& d : c.domains) {
    md += "| " + (d == c.target ? "**" + d + "**" : d) + " |";
    for (size_t i = 0; i < runs.size(); ++i) {
      const double v = perplexity_of(runs[i], d);
      md += " " + fmt(v) + " |";
      if (i) md += " " + pct(v / runs[0].perplexity.at(d) - 1) + " |";
    }
    md += "\n";
  }

  md += "\nSummary (gem-method.md section 6; losses in nats)\n\n| model | NLL gain | off-target rise | "
        "general probe rise | general (replayed) rise | gain kept | forgetting reduction | domain gain (PPL) | "
        "general drift (PPL) | S(m,t) | S(m,~t) | DSI | GG |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const SectionSix& six = runs[i].six;
    md += "| " + runs[i].label + " | " + fmt(six.nll_gain, "%+.4f") + " | " + fmt(six.off_target_rise, "%+.4f") +
          " | " + fmt(six.probe_rise, "%+.4f") + " | " + fmt(six.general_rise, "%+.4f") + " | " +
          (i > 1 ? pct(runs[i].gain_kept) : "") + " | " + (i > 1 ? pct(runs[i].forgetting_reduction) : "") + " | " +
          pct(six.domain_gain) + " | " + pct(six.general_drift) + " | " + fmt(six.S_target, "%.3f") + " | " +
          fmt(six.S_other, "%.3f") + " | " + fmt(six.DSI, "%.3f") + " | " + pct(six.GG) + " |\n";
  }
  md += "\nNLL gain: fall of the target's mean token NLL; off-target rise: mean NLL rise over the other domains "
        "and the held-out general probe (not the replayed general corpus, shown on its own); gain kept: NLL gain / "
        "that of " + runs[1].label + "; forgetting reduction: 1 - off-target rise / that of " + runs[1].label +
        " (n/a when it did not rise). Domain gain and general drift: the relative perplexity forms. S: mean task "
        "score (macro-F1 or accuracy); DSI = S(m,t)/S(m,~t); GG: relative loss of S off-target.\n";
  if (c.task_keys.empty()) return md;

  md += "\nTask scores (each task's metric, 95% interval over its items; target domain's tasks in bold)\n\n| task |";
  rule = "|---|";
  for (const ComparedRun& run : runs) md += " " + run.label + " |", rule += "---|";
  md += " metric |\n" + rule + "---|\n";
  for (const std::string& key : c.task_keys) {
    std::string metric, domain;
    for (const ComparedRun& run : runs)
      if (run.tasks.count(key)) metric = run.tasks.at(key).metric, domain = run.tasks.at(key).domain;
    md += "| " + (domain == c.target ? "**" + key + "**" : key) + " |";
    for (const ComparedRun& run : runs) md += " " + task_cell(run, key) + " |";
    md += " " + metric + " |\n";
  }
  return md;
}

Comparison compare_reports(const std::vector<LabelledReport>& reports, const std::string& target_domain) {
  const ComparisonFigures figures = compare_figures(reports, target_domain);
  return {to_json(figures), to_markdown(figures)};
}

}  // namespace gemkit
