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

const std::string& string_at(const json& j, const char* key, const LabelledReport& r, const std::string& at) {
  if (!j.contains(key) || !j[key].is_string()) fail(where(r, at + "." + key), "expected a string");
  return j[key].get_ref<const std::string&>();
}

TaskScore task_score(const json& res, const LabelledReport& r, const std::string& at) {
  TaskScore t;
  t.domain = string_at(res, "domain", r, at);
  t.metric = string_at(res, "primary", r, at);
  t.method = string_at(res, "method", r, at);
  const std::string field = at + ".figures." + t.metric;
  if (!res.contains("figures") || !res["figures"].is_object() || !res["figures"].contains(t.metric))
    fail(where(r, field), "missing (the result's primary figure)");
  const json& f = res["figures"][t.metric];
  t.value = number_at(f, "value", r, field + ".value");
  t.low = number_at(f, "low", r, field + ".low");
  t.high = number_at(f, "high", r, field + ".high");
  return t;
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
    if (res.contains("skipped")) continue;
    if (res["kind"] != "perplexity") {
      out.tasks[string_at(res, "key", r, at)] = task_score(res, r, at);
      continue;
    }
    const std::string& domain = string_at(res, "domain", r, at);
    if (!res.contains("figures") || !res["figures"].is_object()) fail(where(r, at + ".figures"), "expected an object");
    const json& f = res["figures"];
    if (f.contains("perplexity"))
      out.perplexity[domain] = number_at(f["perplexity"], "value", r, at + ".figures.perplexity.value");
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

double nll_rise(const DomainFigures& base, const DomainFigures& m, const std::string& domain) {
  const auto at = [](const std::map<std::string, double>& v, const std::string& k) { return v.count(k) ? v.at(k) : NAN; };
  return std::log(at(m.perplexity, domain)) - std::log(at(base.perplexity, domain));
}

std::vector<std::string> off_target_domains(const DomainFigures& base, const std::string& target) {
  std::vector<std::string> out;
  for (const auto& [d, v] : base.perplexity)
    if (d != target && d != kGeneralDomain) out.push_back(d);
  return out;
}

SectionSix section_six(const DomainFigures& base, const DomainFigures& m, const std::string& target) {
  const auto at = [](const std::map<std::string, double>& v, const std::string& k) { return v.count(k) ? v.at(k) : NAN; };
  SectionSix s;
  s.nll_gain = 0.0 - nll_rise(base, m, target);  // not -rise: the base against itself prints +0, not -0
  const std::vector<std::string> off = off_target_domains(base, target);
  double sum = 0;
  for (const std::string& d : off) sum += nll_rise(base, m, d);
  s.off_target_rise = off.empty() ? NAN : sum / double(off.size());
  s.general_rise = nll_rise(base, m, kGeneralDomain);
  s.probe_rise = nll_rise(base, m, kGeneralProbe);
  s.domain_gain = (at(base.perplexity, target) - at(m.perplexity, target)) / at(base.perplexity, target);
  s.general_drift = at(m.perplexity, kGeneralDomain) / at(base.perplexity, kGeneralDomain) - 1;
  s.S_target = at(m.score, target);
  s.S_other = score_off_target(m.score, target);
  s.DSI = s.S_target / s.S_other;
  const double s0_other = score_off_target(base.score, target);
  s.GG = (s0_other - s.S_other) / s0_other;
  return s;
}

double forgetting_reduction(double rise, double reference_rise) {
  if (!std::isfinite(rise) || !std::isfinite(reference_rise) || reference_rise <= 0) return NAN;
  return 1 - rise / reference_rise;
}

double gain_kept(double gain, double reference_gain) {
  if (!std::isfinite(gain) || !std::isfinite(reference_gain) || reference_gain <= 0) return NAN;
  return gain / reference_gain;
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
  std::set<std::pair<bool, std::string>> tasks;  // (not the target's, key): the target's first
  for (const DomainFigures& f : figures)
    for (const auto& [key, t] : f.tasks) tasks.insert({t.domain != target, key});
  for (const auto& [other, key] : tasks) c.task_keys.push_back(key);
  for (size_t i = 0; i < reports.size(); ++i) {
    ComparedRun run;
    run.label = reports[i].label;
    run.perplexity = figures[i].perplexity;
    run.tasks = figures[i].tasks;
    run.six = section_six(figures[0], figures[i], target);
    // The base against itself comes out as exactly 0 where it has the perplexity and n/a where
    // it has not (a report of tasks alone), never a 0 that was not measured.
    if (i > 1) {
      const SectionSix& ft = c.runs[1].six;
      run.gain_kept = gain_kept(run.six.nll_gain, ft.nll_gain);
      run.forgetting_reduction = forgetting_reduction(run.six.off_target_rise, ft.off_target_rise);
    }
    c.runs.push_back(std::move(run));
  }
  return c;
}

}  // namespace gemkit
