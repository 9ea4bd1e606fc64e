// The output of `gemkit compare --sequential`: the sequential-domain figures of
// eval/sequential.h (accuracy matrices, ACC, BWT, FWT, forgetting) as a JSON document and as
// markdown tables. Torch-free.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "eval/sequential.h"

namespace gemkit::eval {

// {"domains", "rows", "score" and "ppl_gain": {"matrix": [[{value, low, high}]], "ACC", "BWT",
// "FWT", "forgetting", "forgetting_per_domain": {domain: ...}}, "item_intervals": bool,
// "item_intervals_note"}; non-finite numbers are null.
nlohmann::json to_json(const SequentialReport& r);
// For each of the two matrices: the matrix (one row per stage), then ACC, BWT, FWT, forgetting.
std::string to_markdown(const SequentialReport& r);
// The NLL-fall matrix as an SVG heatmap (rows: after each stage; columns: the domains).
std::string nll_fall_heatmap_svg(const SequentialReport& r);

}  // namespace gemkit::eval
