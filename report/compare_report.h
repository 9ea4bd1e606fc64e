// The output of `gemkit compare --target`: the comparison of eval/compare.h (base vs adapted
// models, docs/design/gem-method.md section 6) as a JSON document and as markdown tables.
// Torch-free.
//
// JSON layout:
//   {"perplexity": {domain: {label: PPL}}, "summary": {label: {"nll_gain", "off_target_rise",
//    "probe_rise", "general_rise", "gain_kept_vs_<first adapted label>",
//    "forgetting_reduction_vs_<first adapted label>", "domain_gain", "general_drift", "S_target",
//    "S_other", "DSI", "GG"}},
//    "tasks": {task key: {label: {"metric", "method", "value", "low", "high"}}} (a report without
//    the task has no entry), "target"}; non-finite numbers are null.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/compare.h"

namespace gemkit {

nlohmann::json to_json(const ComparisonFigures& c);
// A perplexity table (each domain of the base, change against the base), the summary table and,
// when the reports have tasks, a table of every task's score per report.
std::string to_markdown(const ComparisonFigures& c);

struct Comparison {
  nlohmann::json json;   // per-domain perplexities and scores, per-run summary metrics
  std::string markdown;  // the same as tables
};

// compare_figures (eval/compare.h) written out: reports[0] is the base model m0; the others are
// adapted to `target_domain`. Throws gemkit::Error naming the report whose content is missing
// or malformed.
Comparison compare_reports(const std::vector<LabelledReport>& reports, const std::string& target_domain);

}  // namespace gemkit
