// What one `gemkit eval` run measures: a result per task or perplexity corpus, each with its
// figures and intervals, and S(m, d) per domain computed from them. Torch-free. The JSON and
// markdown files of a Report are written in report/eval_report.h.
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

// S(m, d) of one domain (docs/design/gem-method.md section 6): the mean of the primary figures
// of the domain's evaluated tasks, and how many tasks that is.
struct DomainScore {
  double score = 0;
  int tasks = 0;
};
// By domain; perplexity results, skipped ones and those without their primary figure are left
// out, so a domain with perplexity only has no entry.
std::map<std::string, DomainScore> domain_scores(const Report& report);

}  // namespace gemkit::eval
