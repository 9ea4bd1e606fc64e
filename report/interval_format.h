// Numbers and Intervals (eval/bootstrap.h: a value with its percentile bounds) in the report
// files: as table text and, for intervals, as a JSON object. Torch-free.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "eval/bootstrap.h"

namespace gemkit::eval {

// A number with printf format `f`; `missing` for a non-finite one (an undefined figure).
std::string number_text(double v, const char* f, const char* missing = "n/a");

// {"value", "low", "high"}, non-finite numbers as null.
nlohmann::json interval_json(const Interval& i);
// "v [low, high]" with printf format `f` for each number ("n/a" for non-finite; the bracket
// is left out when both bounds are); `percent` prints 100 x the numbers with a sign and "%".
std::string interval_text(const Interval& i, const char* f = "%.3f", bool percent = false);

}  // namespace gemkit::eval
