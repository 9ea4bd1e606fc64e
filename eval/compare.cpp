#include "eval/compare.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "core/error.h"

namespace gemkit {
namespace {

using json = nlohmann::json;

constexpr const char* kGeneral = "general";
constexpr const char* kNotADomain = "cross";  // the eight-way domain-identification task

// Perplexity per domain from a report's "perplexity" results.
std::map<std::string, double> perplexities(const LabelledReport& r) {
  std::map<std::string, double> out;
  if (!r.report.contains("results") || !r.report["results"].is_array())
    fail("report " + r.label, "\"results\": expected an array (is this a gemkit eval JSON?)");
  for (const json& res : r.report["results"]) {
    if (res.value("kind", "") != "perplexity" || res.contains("skipped")) continue;
    const json& f = res.at("figures");
    if (f.contains("perplexity")) out[res.value("domain", "")] = f["perplexity"].at("value").get<double>();
  }
  return out;
}

std::map<std::string, double> domain_scores(const LabelledReport& r) {
  std::map<std::string, double> out;
  if (!r.report.contains("domain_scores")) return out;
  for (const auto& [domain, v] : r.report["domain_scores"].items())
    if (domain != kNotADomain) out[domain] = v.at("score").get<double>();
  return out;
}

double mean_except(const std::map<std::string, double>& scores, const std::string& target) {
  double sum = 0;
  int n = 0;
  for (const auto& [d, s] : scores)
    if (d != target) sum += s, ++n;
  return n ? sum / n : NAN;
}

std::string fmt(double v, const char* f = "%.2f") {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pct(double v) { return std::isfinite(v) ? fmt(100 * v, "%+.1f%%") : "n/a"; }

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

Comparison compare_reports(const std::vector<LabelledReport>& reports, const std::string& target) {
  if (reports.size() < 2) fail("eval compare", "expected a base report and at least one adapted report");
  std::vector<std::map<std::string, double>> ppl, score;
  for (const LabelledReport& r : reports) {
    ppl.push_back(perplexities(r));
    score.push_back(domain_scores(r));
  }
  std::set<std::string> domains;
  for (const auto& p : ppl)
    for (const auto& [d, v] : p) domains.insert(d);
  for (const auto& s : score)
    for (const auto& [d, v] : s) domains.insert(d);
  if (!domains.count(target))
    fail("eval compare", "target domain \"" + target + "\" is in none of the reports");

  Comparison c;
  std::string md = "Perplexity per domain (change against " + reports[0].label + "; target: " + target + ")\n\n| domain |";
  std::string rule = "|---|";
  for (size_t i = 0; i < reports.size(); ++i) {
    md += " " + reports[i].label + " |" + (i ? " change |" : "");
    rule += i ? "---|---|" : "---|";
  }
  md += "\n" + rule + "\n";
  for (const std::string& d : domains) {
    if (!ppl[0].count(d)) continue;
    md += "| " + (d == target ? "**" + d + "**" : d) + " |";
    for (size_t i = 0; i < reports.size(); ++i) {
      const double v = ppl[i].count(d) ? ppl[i].at(d) : NAN;
      md += " " + fmt(v) + " |";
      if (i) md += " " + pct(v / ppl[0].at(d) - 1) + " |";
      c.json["perplexity"][d][reports[i].label] = number_or_null(v);
    }
    md += "\n";
  }

  const auto at = [](const std::map<std::string, double>& m, const std::string& k) {
    return m.count(k) ? m.at(k) : NAN;
  };
  const double s0_other = mean_except(score[0], target);
  md += "\nSummary (gem-method.md section 6)\n\n| model | domain gain | general drift | forgetting reduction | "
        "S(m,t) | S(m,~t) | DSI | GG |\n|---|---|---|---|---|---|---|---|\n";
  double first_drift = NAN;
  for (size_t i = 0; i < reports.size(); ++i) {
    const double gain = i ? (at(ppl[0], target) - at(ppl[i], target)) / at(ppl[0], target) : 0.0;
    const double drift = i ? at(ppl[i], kGeneral) / at(ppl[0], kGeneral) - 1 : 0.0;
    if (i == 1) first_drift = drift;
    const double reduction = i > 1 && first_drift != 0 ? 1 - drift / first_drift : NAN;
    const double s_t = at(score[i], target), s_other = mean_except(score[i], target);
    const double dsi = s_t / s_other, gg = (s0_other - s_other) / s0_other;
    md += "| " + reports[i].label + " | " + pct(gain) + " | " + pct(drift) + " | " +
          (i > 1 ? pct(reduction) : "") + " | " + fmt(s_t, "%.3f") + " | " + fmt(s_other, "%.3f") + " | " +
          fmt(dsi, "%.3f") + " | " + pct(gg) + " |\n";
    json& s = c.json["summary"][reports[i].label];
    s["domain_gain"] = number_or_null(gain);
    s["general_drift"] = number_or_null(drift);
    s["forgetting_reduction_vs_" + reports[1].label] = number_or_null(reduction);
    s["S_target"] = number_or_null(s_t);
    s["S_other"] = number_or_null(s_other);
    s["DSI"] = number_or_null(dsi);
    s["GG"] = number_or_null(gg);
  }
  md += "\nDomain gain: relative fall of the target's perplexity; general drift: relative rise of the general "
        "corpus's perplexity (forgetting); forgetting reduction: 1 - drift / drift of " + reports[1].label +
        ". S: mean task score (macro-F1 or accuracy); DSI = S(m,t)/S(m,~t); GG: relative loss of S off-target.\n";
  c.json["target"] = target;
  c.markdown = md;
  return c;
}

}  // namespace gemkit
