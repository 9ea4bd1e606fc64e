// Bootstrap confidence intervals over test items (docs/design/gem-method.md section 6: every figure comes
// with a 95% interval). Percentile method with a fixed seed, so a report is reproducible
// byte for byte. Torch-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace gemkit::eval {

struct Interval {
  double value = 0;  // the statistic on the full sample
  double low = 0;    // percentile bounds of the resampled statistic
  double high = 0;
};

struct BootstrapOptions {
  int64_t resamples = 1000;
  uint64_t seed = 1234;
  double confidence = 0.95;
};

// `statistic` receives the item indices of one sample (with repetition; the full sample is
// 0..n-1) and returns the figure. Resampling whole items (documents for perplexity) keeps the
// dependence between an item's tokens inside one draw. When the figure is not finite on some
// resample, low and high are NaN: the interval is undefined (no resample is dropped).
Interval bootstrap(size_t n, const std::function<double(const std::vector<size_t>&)>& statistic,
                   const BootstrapOptions& options = {});

// The mean of per-item values (accuracy from 0/1 correctness).
Interval bootstrap_mean(const std::vector<double>& values, const BootstrapOptions& options = {});

// Linear-interpolated quantile q in [0, 1] of `sorted` (ascending, non-empty).
double quantile(const std::vector<double>& sorted, double q);

}  // namespace gemkit::eval
