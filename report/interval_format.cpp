#include "report/interval_format.h"

#include <cmath>
#include <cstdio>

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

}  // namespace

std::string number_text(double v, const char* f, const char* missing) {
  if (!std::isfinite(v)) return missing;
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

json interval_json(const Interval& i) {
  const auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return {{"value", num(i.value)}, {"low", num(i.low)}, {"high", num(i.high)}};
}

std::string interval_text(const Interval& i, const char* f, bool percent) {
  const auto one = [&](double v) -> std::string {
    if (!percent) return number_text(v, f);
    return number_text(100 * v, (std::string("%+") + (f + 1) + "%%").c_str());
  };
  std::string s = one(i.value);
  if (std::isfinite(i.low) || std::isfinite(i.high)) s += " [" + one(i.low) + ", " + one(i.high) + "]";
  return s;
}

}  // namespace gemkit::eval
