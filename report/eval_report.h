// The files of one `gemkit eval`: a JSON file (everything, machine-readable) and a markdown
// table (the headline figures) saved next to it, from the Report that eval/evaluate.h collects
// (eval/result.h). Torch-free.
//
// JSON layout:
//   {"gemkit_eval": 1, "model": {path, architecture, family, head, layers, hidden_size,
//    vocab_size, parameters, dtype}, "tokenizer": {kind, vocab_size}, "settings": {...},
//    "results": [{"kind": "perplexity"|"multiple_choice"|"classification", "key", "domain",
//                 "method", "items", "figures": {name: {value, low, high}}, "primary",
//                 "stats": {...}, "baselines": {...}, "skipped": reason (only when skipped)}],
//    "domain_scores": {domain: {"score", "tasks"}}, "elapsed_s"}
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "eval/result.h"

namespace gemkit::eval {

nlohmann::json to_json(const Report& report);
// The markdown table: one row per result (figure with its 95% interval, items, baselines),
// then S(m, d) per domain (mean of the primary figures of the domain's tasks).
std::string to_markdown(const Report& report);
// Writes `json_path` and the markdown beside it (same name, .md), atomically.
void write_report(const Report& report, const std::string& json_path);
// The .md path for a .json path.
std::string markdown_path(const std::string& json_path);

}  // namespace gemkit::eval
