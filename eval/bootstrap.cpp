#include "eval/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"

namespace gemkit::eval {

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) fail("eval::quantile", "empty sample");
  const double pos = q * double(sorted.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

Interval bootstrap(size_t n, const std::function<double(const std::vector<size_t>&)>& statistic,
                   const BootstrapOptions& options) {
  if (options.resamples < 1) fail("eval::bootstrap", "resamples must be at least 1");
  if (!(options.confidence > 0 && options.confidence < 1))
    fail("eval::bootstrap", "confidence must be in (0, 1)");
  Interval out;
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  if (n == 0) return out;  // nothing measured: 0 [0, 0]; callers report the item count
  out.value = statistic(idx);
  // mt19937_64 and our own index mapping (not uniform_int_distribution, whose algorithm the
  // standard leaves open) give the same draws with every standard library.
  std::mt19937_64 rng(options.seed);
  std::vector<double> stats;
  stats.reserve(size_t(options.resamples));
  for (int64_t r = 0; r < options.resamples; ++r) {
    for (size_t i = 0; i < n; ++i) idx[i] = size_t(rng() % n);  // bias ~n/2^64: negligible
    const double s = statistic(idx);
    // A figure undefined on one resample has no interval: dropping that resample would narrow
    // the interval to the samples where the figure happens to exist.
    if (!std::isfinite(s)) {
      out.low = out.high = NAN;
      return out;
    }
    stats.push_back(s);
  }
  std::sort(stats.begin(), stats.end());
  const double alpha = 1 - options.confidence;
  out.low = quantile(stats, alpha / 2);
  out.high = quantile(stats, 1 - alpha / 2);
  return out;
}

Interval bootstrap_mean(const std::vector<double>& values, const BootstrapOptions& options) {
  return bootstrap(
      values.size(),
      [&](const std::vector<size_t>& idx) {
        double s = 0;
        for (size_t i : idx) s += values[i];
        return s / double(idx.size());
      },
      options);
}

}  // namespace gemkit::eval
