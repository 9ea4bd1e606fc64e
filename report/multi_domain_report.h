// The output of `gemkit compare --multi-domain`: single models serving every domain against the
// per-domain oracles (eval/multi_domain.h) as a JSON document and markdown tables. Torch-free.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/multi_domain.h"
#include "report/pareto.h"

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

// The trade-off plane of one model for every domain: mean NLL fall over the domains against the
// general probe's NLL rise. A label "METHOD @ SETTING" puts the model on METHOD's curve (a sweep
// of one method: a merge coefficient, a router bias); each model is placed against the Pareto
// frontier of the other methods' models (report/pareto.h, the base at (0, 0)).
struct MultiDomainTradeoff {
  std::string method;  // the label up to " @ " (the whole label without one)
  FrontierPosition position;
};
std::string method_of_label(const std::string& label);
std::vector<MultiDomainTradeoff> multi_domain_tradeoffs(const MultiDomainReport& r);
// The plane as an SVG scatter: each method's models (a line through a method's sweep), intervals,
// and the frontier of all.
std::string multi_domain_tradeoff_svg(const MultiDomainReport& r);

}  // namespace gemkit::eval
