#include "eval/multi_domain.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/item_bootstrap.h"

namespace gemkit::eval {
namespace {

using Figures = std::vector<DomainFigures>;

double log_ppl(const DomainFigures& f, const std::string& d) {
  return f.perplexity.count(d) ? std::log(f.perplexity.at(d)) : NAN;
}

// Report index i (0: base, 1..K: oracles, then the models) judged against the base and oracles.
MultiDomainRow row(const ItemBootstrap& boot, const std::string& label, size_t i, const std::vector<std::string>& domains) {
  const size_t K = domains.size();
  const auto fall = [](const Figures& f, size_t i, const std::string& d) { return log_ppl(f[0], d) - log_ppl(f[i], d); };
  const auto rise = [](const Figures& f, size_t i, const std::string& d) { return log_ppl(f[i], d) - log_ppl(f[0], d); };
  const auto share = [&](const Figures& f, size_t k) {
    const double oracle = fall(f, 1 + k, domains[k]);
    return oracle >= kMinOracleFall ? fall(f, i, domains[k]) / oracle : NAN;
  };
  MultiDomainRow r;
  r.label = label;
  for (size_t k = 0; k < K; ++k) {
    r.fall.push_back(boot.interval([&](const Figures& f) { return fall(f, i, domains[k]); }));
    r.oracle_share.push_back(boot.interval([&](const Figures& f) { return share(f, k); }));
  }
  r.mean_fall = boot.interval([&](const Figures& f) {
    double s = 0;
    for (const std::string& d : domains) s += fall(f, i, d);
    return s / double(K);
  });
  // Over the domains whose share is defined on the full data (the same set in every resample,
  // so that a resample never averages over other domains).
  std::vector<size_t> judged;
  for (size_t k = 0; k < K; ++k)
    if (!std::isnan(share(boot.full(), k))) judged.push_back(k);
  r.mean_oracle_share = boot.interval([&](const Figures& f) {
    double sum = 0;
    for (size_t k : judged) sum += share(f, k);
    return judged.empty() ? NAN : sum / double(judged.size());
  });
  r.min_oracle_share = boot.interval([&](const Figures& f) {
    double m = judged.empty() ? NAN : INFINITY;
    for (size_t k : judged) m = std::min(m, share(f, k));
    return m;
  });
  r.probe_rise = boot.interval([&](const Figures& f) { return rise(f, i, kGeneralProbe); });
  r.probe_ppl_change = boot.interval([&](const Figures& f) { return std::exp(rise(f, i, kGeneralProbe)) - 1; });
  r.general_rise = boot.interval([&](const Figures& f) { return rise(f, i, kGeneralDomain); });
  return r;
}

// "scar/load/<expert>" of the report's perplexity result for `corpus`; NaN when absent.
double routing_load(const LabelledReport& r, const std::string& corpus, const std::string& expert) {
  if (!r.report.contains("results") || !r.report["results"].is_array()) return NAN;
  for (const auto& result : r.report["results"]) {
    if (!result.is_object() || result.value("kind", "") != "perplexity" || result.value("key", "") != corpus) continue;
    const auto stats = result.find("stats");
    if (stats == result.end() || !stats->is_object()) return NAN;
    const auto load = stats->find("scar/load/" + expert);
    return load != stats->end() && load->is_number() ? load->get<double>() : NAN;
  }
  return NAN;
}

void add_routing(MultiDomainRow& row, const LabelledReport& r, const std::vector<std::string>& domains) {
  for (const std::string& d : domains) row.routed_to_own.push_back(routing_load(r, d, d));
  row.probe_to_general = routing_load(r, kGeneralProbe, "general");
}

}  // namespace

bool MultiDomainRow::routed() const {
  for (double v : routed_to_own)
    if (!std::isnan(v)) return true;
  return !std::isnan(probe_to_general);
}

MultiDomainReport multi_domain_report(const LabelledReport& base, const std::vector<std::string>& domains,
                                      const std::vector<LabelledReport>& oracles,
                                      const std::vector<LabelledReport>& models, const BootstrapOptions& options) {
  if (domains.empty()) fail("multi-domain comparison", "expected at least one domain");
  if (oracles.size() != domains.size())
    fail("multi-domain comparison", "expected one oracle report per domain (" + std::to_string(domains.size()) +
                                        "), got " + std::to_string(oracles.size()));
  if (models.empty()) fail("multi-domain comparison", "expected the report of at least one model to judge");
  std::vector<LabelledReport> all{base};
  all.insert(all.end(), oracles.begin(), oracles.end());
  all.insert(all.end(), models.begin(), models.end());
  for (const LabelledReport& r : all) {
    const DomainFigures f = domain_figures(r);
    for (const std::string& d : domains)
      if (!f.perplexity.count(d)) fail("report " + r.label, "no perplexity for domain '" + d + "'");
  }
  const ItemBootstrap boot(all, options);
  MultiDomainReport out;
  out.domains = domains;
  out.item_intervals = boot.available();
  if (!boot.available()) out.item_intervals_note = boot.reason() + ": no item-level intervals";
  for (size_t k = 0; k < oracles.size(); ++k) {
    out.oracle.push_back(row(boot, oracles[k].label, 1 + k, domains));
    if (!(out.oracle.back().fall[k].value >= kMinOracleFall)) out.unjudged.push_back(domains[k]);
  }
  for (size_t m = 0; m < models.size(); ++m) {
    out.models.push_back(row(boot, models[m].label, 1 + oracles.size() + m, domains));
    add_routing(out.models.back(), models[m], domains);
  }
  return out;
}

}  // namespace gemkit::eval
