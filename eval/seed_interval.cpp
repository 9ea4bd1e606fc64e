#include "eval/seed_interval.h"

#include <cmath>

namespace gemkit::eval {
namespace {

// Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
const double kT975[] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                        2.2010,  2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                        2.0796,  2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};

double t975(size_t df) {
  if (df >= 1 && df <= 30) return kT975[df - 1];
  const double z = 1.959964, d = double(df);  // Cornish-Fisher expansion beyond the table
  return z + (z * z * z + z) / (4 * d) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

}  // namespace

Interval seed_interval(const std::vector<double>& values) {
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  Interval out{NAN, NAN, NAN};
  if (v.empty()) return out;
  double sum = 0;
  for (double x : v) sum += x;
  out.value = sum / double(v.size());
  if (v.size() < 2) return out;
  double ss = 0;
  for (double x : v) ss += (x - out.value) * (x - out.value);
  const double half = t975(v.size() - 1) * std::sqrt(ss / double(v.size() - 1)) / std::sqrt(double(v.size()));
  out.low = out.value - half;
  out.high = out.value + half;
  return out;
}

}  // namespace gemkit::eval
