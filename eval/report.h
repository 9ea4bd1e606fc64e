// The result of one `gemkit eval`: a JSON file (everything, machine-readable) and a markdown
// table (the headline figures) saved next to it. Torch-free.
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

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "eval/bootstrap.h"

namespace gemkit::eval {

struct Figure {
  std::string name;  // "perplexity", "accuracy", "accuracy_norm", "macro_f1", "bits_per_byte"
  Interval ci;
};

struct Result {
  std::string kind;    // perplexity | multiple_choice | classification
  std::string key;     // task key ("law/spdx_osi") or domain (perplexity)
  std::string domain;
  std::string method;  // how it was scored: "token_nll", "loglik", "label_words", "head"
  int64_t items = 0;   // test items (documents for perplexity)
  std::vector<Figure> figures;
  std::string primary;               // the figure that enters S(m, d): the task's metric
  std::map<std::string, double> stats;  // extra counts (tokens, bytes, truncated, ...)
  nlohmann::json baselines;          // from the suite manifest; null when absent
  // Per test item, for paired item-level bootstraps across reports (eval/item_bootstrap.h):
  // perplexity {"nll": [...], "tokens": [...]} per document; tasks {"gold": [...], "pred": [...],
  // "num_classes": K}. Null when skipped.
  nlohmann::json per_item;
  std::string skipped;               // non-empty: not evaluated, and why

  const Figure* figure(const std::string& name) const;
};

struct Report {
  nlohmann::json model;      // path and config summary
  nlohmann::json tokenizer;  // kind and vocabulary size
  nlohmann::json settings;   // split, batch size, seq_len, bootstrap, device, ...
  std::vector<Result> results;
  double elapsed_s = 0;
};

nlohmann::json to_json(const Report& report);
// The markdown table: one row per result (figure with its 95% interval, items, baselines),
// then S(m, d) per domain (mean of the primary figures of the domain's tasks).
std::string to_markdown(const Report& report);
// Writes `json_path` and the markdown beside it (same name, .md), atomically.
void write_report(const Report& report, const std::string& json_path);
// The .md path for a .json path.
std::string markdown_path(const std::string& json_path);

}  // namespace gemkit::eval
