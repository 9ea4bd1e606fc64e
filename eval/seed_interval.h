// An interval over seeds: the mean of a figure over a few training runs that differ only in
// their seed, with a Student t 95% interval (docs/design/gem-method.md section 7). Torch-free.
#pragma once
#include <vector>

#include "eval/bootstrap.h"

namespace gemkit::eval {

// mean +- t(0.975, n-1) * sd / sqrt(n) over the finite values (NaN bounds for fewer than two;
// NaN value for none).
Interval seed_interval(const std::vector<double>& values);

}  // namespace gemkit::eval
