#include "report/interval_format.h"

#include <cmath>
#include <cstdio>

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

}  // namespace

json interval_json(const Interval& i) {
  const auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return {{"value", num(i.value)}, {"low", num(i.low)}, {"high", num(i.high)}};
}

std::string interval_text(const Interval& i, const char* f, bool percent) {
  const auto one = [&](double v) -> std::string {
    if (!std::isfinite(v)) return "n/a";
    char buf[64];
    if (percent) {
      std::snprintf(buf, sizeof buf, (std::string("%+") + (f + 1) + "%%").c_str(), 100 * v);
    } else {
      std::snprintf(buf, sizeof buf, f, v);
    }
    return buf;
  };
  std::string s = one(i.value);
  if (std::isfinite(i.low) || std::isfinite(i.high)) s += " [" + one(i.low) + ", " + one(i.high) + "]";
  return s;
}

}  // namespace gemkit::eval
