#include "eval/compare.h"

#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "core/error.h"

namespace gemkit {
namespace {

using json = nlohmann::json;

constexpr const char* kNotADomain = "cross";  // the eight-way domain-identification task

std::string where(const LabelledReport& r, const std::string& field) { return "report " + r.label + ": " + field; }

// A number, or null (the report writes non-finite figures as null): NaN.
double number_at(const json& j, const char* key, const LabelledReport& r, const std::string& field) {
  if (!j.is_object() || !j.contains(key)) fail(where(r, field), "missing");
  const json& v = j[key];
  if (v.is_null()) return NAN;
  if (!v.is_number()) fail(where(r, field), std::string("expected a number, got ") + v.type_name());
  return v.get<double>();
}

}  // namespace

DomainFigures domain_figures(const LabelledReport& r) {
  DomainFigures out;
  if (!r.report.is_object() || !r.report.contains("results") || !r.report["results"].is_array())
    fail("report " + r.label, "\"results\": expected an array (is this a gemkit eval JSON?)");
  const json& results = r.report["results"];
  for (size_t i = 0; i < results.size(); ++i) {
    const json& res = results[i];
    const std::string at = "results[" + std::to_string(i) + "]";
    if (!res.is_object() || !res.contains("kind") || !res["kind"].is_string())
      fail(where(r, at), "expected an object with a string \"kind\"");
    if (res["kind"] != "perplexity" || res.contains("skipped")) continue;
    if (!res.contains("domain") || !res["domain"].is_string()) fail(where(r, at + ".domain"), "expected a string");
    if (!res.contains("figures") || !res["figures"].is_object()) fail(where(r, at + ".figures"), "expected an object");
    const json& f = res["figures"];
    if (f.contains("perplexity"))
      out.perplexity[res["domain"].get<std::string>()] =
          number_at(f["perplexity"], "value", r, at + ".figures.perplexity.value");
  }
  if (!r.report.contains("domain_scores")) return out;
  if (!r.report["domain_scores"].is_object()) fail(where(r, "domain_scores"), "expected an object");
  for (const auto& [domain, v] : r.report["domain_scores"].items())
    if (domain != kNotADomain) out.score[domain] = number_at(v, "score", r, "domain_scores." + domain + ".score");
  return out;
}

double score_off_target(const std::map<std::string, double>& scores, const std::string& target) {
  double sum = 0;
  int n = 0;
  for (const auto& [d, s] : scores)
    if (d != target) sum += s, ++n;
  return n ? sum / n : NAN;
}

SectionSix section_six(const DomainFigures& base, const DomainFigures& m, const std::string& target) {
  const auto at = [](const std::map<std::string, double>& v, const std::string& k) { return v.count(k) ? v.at(k) : NAN; };
  SectionSix s;
  s.domain_gain = (at(base.perplexity, target) - at(m.perplexity, target)) / at(base.perplexity, target);
  s.general_drift = at(m.perplexity, kGeneralDomain) / at(base.perplexity, kGeneralDomain) - 1;
  s.S_target = at(m.score, target);
  s.S_other = score_off_target(m.score, target);
  s.DSI = s.S_target / s.S_other;
  const double s0_other = score_off_target(base.score, target);
  s.GG = (s0_other - s.S_other) / s0_other;
  return s;
}

double forgetting_reduction(double drift, double reference_drift) {
  if (!std::isfinite(drift) || !std::isfinite(reference_drift) || reference_drift == 0) return NAN;
  return 1 - drift / reference_drift;
}

ComparisonFigures compare_figures(const std::vector<LabelledReport>& reports, const std::string& target) {
  if (reports.size() < 2) fail("eval compare", "expected a base report and at least one adapted report");
  std::vector<DomainFigures> figures;
  for (const LabelledReport& r : reports) figures.push_back(domain_figures(r));
  std::set<std::string> domains;
  for (const DomainFigures& f : figures) {
    for (const auto& [d, v] : f.perplexity) domains.insert(d);
    for (const auto& [d, v] : f.score) domains.insert(d);
  }
  if (!domains.count(target))
    fail("eval compare", "target domain \"" + target + "\" is in none of the reports");

  ComparisonFigures c;
  c.target = target;
  for (const auto& [d, v] : figures[0].perplexity) c.domains.push_back(d);
  double first_drift = NAN;
  for (size_t i = 0; i < reports.size(); ++i) {
    ComparedRun run;
    run.label = reports[i].label;
    run.perplexity = figures[i].perplexity;
    run.six = section_six(figures[0], figures[i], target);
    // The base against itself: no gain, no drift (also where its perplexity is missing).
    if (i == 0) run.six.domain_gain = run.six.general_drift = 0.0;
    if (i == 1) first_drift = run.six.general_drift;
    if (i > 1) run.forgetting_reduction = forgetting_reduction(run.six.general_drift, first_drift);
    c.runs.push_back(std::move(run));
  }
  return c;
}

}  // namespace gemkit
