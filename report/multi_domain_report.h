// The output of `gemkit compare --multi-domain`: single models serving every domain against the
// per-domain oracles (eval/multi_domain.h) as a JSON document and markdown tables. Torch-free.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "eval/multi_domain.h"

namespace gemkit::eval {

// {"domains", "oracles": [row], "models": [row], "item_intervals", "item_intervals_note"}, a row
// {"label", "fall": {d: {value, low, high}}, "oracle_share": {d: ...}, "mean_fall",
// "min_oracle_share", "probe_rise", "probe_ppl_change", "general_rise"}; non-finite numbers are null.
nlohmann::json to_json(const MultiDomainReport& r);
// Two tables: each domain's NLL fall (oracles first, each on its own domain; then the models)
// with the mean fall and the probe and general rises; then each model's share of the oracles'.
std::string to_markdown(const MultiDomainReport& r);
// Each model's share of the oracles' NLL falls per domain as an SVG heatmap.
std::string oracle_share_heatmap_svg(const MultiDomainReport& r);

}  // namespace gemkit::eval
