#include "eval/transfer.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "core/error.h"
#include "eval/item_bootstrap.h"

namespace gemkit::eval {
namespace {

double at(const std::map<std::string, double>& m, const std::string& k) { return m.count(k) ? m.at(k) : NAN; }

// mean over t != s of gain(t) / gain(s), gain(d) = gain_of(base[d], adapted[d]).
double transfer_ratio(const std::map<std::string, double>& base, const std::map<std::string, double>& adapted,
                      const std::string& source, double (*gain_of)(double, double), const char* what,
                      std::string* why) {
  const auto undefined = [&](const std::string& reason) {
    if (why) *why = reason;
    return NAN;
  };
  const double gain = gain_of(at(base, source), at(adapted, source));
  if (!std::isfinite(gain)) return undefined(std::string("no ") + what + " for the source domain " + source);
  if (gain < kCdtrMinGain) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "on-target gain %.4f is below %.2f", gain, kCdtrMinGain);
    return undefined(buf);
  }
  double sum = 0;
  int n = 0;
  for (const auto& [t, v] : adapted) {
    const double g = gain_of(at(base, t), v);
    if (t == source || !std::isfinite(g)) continue;
    sum += g / gain;
    ++n;
  }
  if (!n) return undefined(std::string("no domain besides ") + source + " has a " + what);
  if (why) why->clear();
  return sum / n;
}

double score_gain(double base, double adapted) { return adapted - base; }
double ppl_gain(double base, double adapted) { return (base - adapted) / base; }

}  // namespace

double cdtr(const DomainFigures& base, const DomainFigures& adapted, const std::string& source, std::string* why) {
  return transfer_ratio(base.score, adapted.score, source, score_gain, "task score", why);
}

double cdtr_ppl(const DomainFigures& base, const DomainFigures& adapted, const std::string& source,
                std::string* why) {
  return transfer_ratio(base.perplexity, adapted.perplexity, source, ppl_gain, "perplexity", why);
}

TransferMatrix transfer_matrix(const LabelledReport& base, const std::vector<TransferSource>& adapted,
                               const BootstrapOptions& options) {
  if (adapted.empty()) fail("transfer matrix", "expected at least one adapted model's report");
  std::vector<LabelledReport> reports{base};
  for (const TransferSource& s : adapted) reports.push_back(s.report);
  const ItemBootstrap boot(reports, options);  // also checks every report's layout

  TransferMatrix m;
  m.item_intervals = boot.available();
  m.item_intervals_note = boot.available() ? "" : boot.reason() + ": no item-level intervals";
  std::set<std::string> domains;
  for (const LabelledReport& r : reports) {
    const DomainFigures f = domain_figures(r);
    for (const auto& [d, v] : f.score) domains.insert(d);
    for (const auto& [d, v] : f.perplexity) domains.insert(d);
  }
  m.domains.assign(domains.begin(), domains.end());
  for (size_t i = 0; i < adapted.size(); ++i) {
    const std::string& s = adapted[i].domain;
    const size_t r = i + 1;  // the model's index in `reports`
    m.rows.push_back(adapted[i].report.label);
    m.sources.push_back(s);
    std::vector<Interval> ds, dp;
    for (const std::string& t : m.domains) {
      ds.push_back(boot.interval([&](const std::vector<DomainFigures>& f) { return at(f[r].score, t) - at(f[0].score, t); }));
      dp.push_back(boot.interval(
          [&](const std::vector<DomainFigures>& f) { return at(f[r].perplexity, t) / at(f[0].perplexity, t) - 1; }));
    }
    m.score_delta.push_back(ds);
    m.ppl_change.push_back(dp);
    std::string why;
    m.cdtr.push_back(boot.interval([&](const std::vector<DomainFigures>& f) { return cdtr(f[0], f[r], s); }));
    cdtr(domain_figures(base), domain_figures(adapted[i].report), s, &why);
    m.cdtr_why.push_back(why);
    m.cdtr_ppl.push_back(boot.interval([&](const std::vector<DomainFigures>& f) { return cdtr_ppl(f[0], f[r], s); }));
    cdtr_ppl(domain_figures(base), domain_figures(adapted[i].report), s, &why);
    m.cdtr_ppl_why.push_back(why);
  }
  return m;
}

}  // namespace gemkit::eval
