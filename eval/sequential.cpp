#include "eval/sequential.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"
#include "eval/item_bootstrap.h"

namespace gemkit::eval {
namespace {

using Matrix = std::vector<std::vector<double>>;

double at(const std::map<std::string, double>& m, const std::string& k) { return m.count(k) ? m.at(k) : NAN; }

Matrix score_matrix(const std::vector<DomainFigures>& f, const std::vector<std::string>& domains) {
  Matrix R;
  for (const DomainFigures& stage : f) {
    R.emplace_back();
    for (const std::string& d : domains) R.back().push_back(at(stage.score, d));
  }
  return R;
}

Matrix ppl_gain_matrix(const std::vector<DomainFigures>& f, const std::vector<std::string>& domains) {
  Matrix R;
  for (const DomainFigures& stage : f) {
    R.emplace_back();
    for (const std::string& d : domains)
      R.back().push_back((at(f[0].perplexity, d) - at(stage.perplexity, d)) / at(f[0].perplexity, d));
  }
  return R;
}

Matrix nll_fall_matrix(const std::vector<DomainFigures>& f, const std::vector<std::string>& domains) {
  Matrix R;
  for (const DomainFigures& stage : f) {
    R.emplace_back();
    for (const std::string& d : domains) R.back().push_back(std::log(at(f[0].perplexity, d)) - std::log(at(stage.perplexity, d)));
  }
  return R;
}

SequentialPart part(const ItemBootstrap& boot, const std::function<Matrix(const std::vector<DomainFigures>&)>& matrix,
                    size_t T) {
  using Figures = std::vector<DomainFigures>;
  SequentialPart p;
  for (size_t i = 0; i <= T; ++i) {
    p.matrix.emplace_back();
    for (size_t j = 0; j < T; ++j) p.matrix.back().push_back(boot.interval([&](const Figures& f) { return matrix(f)[i][j]; }));
  }
  const auto metric = [&](double SequentialMetrics::*field) {
    return boot.interval([&](const Figures& f) { return sequential_metrics(matrix(f)).*field; });
  };
  p.acc = metric(&SequentialMetrics::acc);
  p.bwt = metric(&SequentialMetrics::bwt);
  p.fwt = metric(&SequentialMetrics::fwt);
  p.forgetting = metric(&SequentialMetrics::forgetting);
  for (size_t j = 0; j + 1 < T; ++j)
    p.forgetting_per_domain.push_back(
        boot.interval([&](const Figures& f) { return sequential_metrics(matrix(f)).forgetting_per_domain[j]; }));
  return p;
}

}  // namespace

SequentialMetrics sequential_metrics(const Matrix& R) {
  const size_t T = R.empty() ? 0 : R.size() - 1;
  if (T == 0) fail("sequential metrics", "expected the base row and at least one stage");
  for (size_t i = 0; i < R.size(); ++i)
    if (R[i].size() != T)
      fail("sequential metrics", "row " + std::to_string(i) + " has " + std::to_string(R[i].size()) +
                                     " values; expected one per stage (" + std::to_string(T) + ")");
  // Sums first, one division last: hand-computed examples come out exactly.
  SequentialMetrics m;
  for (size_t j = 1; j <= T; ++j) m.acc += R[T][j - 1];
  m.acc /= double(T);
  if (T < 2) {
    m.bwt = m.fwt = m.forgetting = NAN;
    return m;
  }
  for (size_t j = 1; j <= T - 1; ++j) {
    m.bwt += R[T][j - 1] - R[j][j - 1];
    double best = -INFINITY;
    for (size_t l = 1; l <= T - 1; ++l) best = std::isnan(R[l][j - 1]) ? NAN : std::max(best, R[l][j - 1]);
    m.forgetting_per_domain.push_back(best - R[T][j - 1]);
    m.forgetting += m.forgetting_per_domain.back();
  }
  for (size_t j = 2; j <= T; ++j) m.fwt += R[j - 1][j - 1] - R[0][j - 1];
  m.bwt /= double(T - 1);
  m.fwt /= double(T - 1);
  m.forgetting /= double(T - 1);
  return m;
}

SequentialReport sequential_report(const LabelledReport& base, const std::vector<TransferSource>& stages,
                                   const BootstrapOptions& options) {
  if (stages.empty()) fail("sequential domains", "expected the report of at least one stage");
  std::vector<LabelledReport> reports{base};
  SequentialReport r;
  r.rows.push_back(base.label);
  for (const TransferSource& s : stages) {
    reports.push_back(s.report);
    r.rows.push_back(s.report.label);
    r.domains.push_back(s.domain);
  }
  const ItemBootstrap boot(reports, options);
  r.item_intervals = boot.available();
  if (!boot.available()) r.item_intervals_note = boot.reason() + ": no item-level intervals";
  const size_t T = stages.size();
  const std::vector<std::string>& d = r.domains;
  r.nll_fall = part(boot, [&](const std::vector<DomainFigures>& f) { return nll_fall_matrix(f, d); }, T);
  r.score = part(boot, [&](const std::vector<DomainFigures>& f) { return score_matrix(f, d); }, T);
  r.ppl_gain = part(boot, [&](const std::vector<DomainFigures>& f) { return ppl_gain_matrix(f, d); }, T);
  return r;
}

}  // namespace gemkit::eval
