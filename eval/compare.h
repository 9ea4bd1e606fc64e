// Comparing evaluation reports (`gemkit eval` JSON) of a base model and models adapted to a target
// domain: the perplexity and score metrics of gem-method.md section 6. Torch-free.
//
//   domain gain    (PPL(m0,t) - PPL(m,t)) / PPL(m0,t)
//   general drift  PPL(m,general) / PPL(m0,general) - 1
//   forgetting reduction of run X against the first run (plain fine-tuning): 1 - drift(X)/drift(first)
//   S(m,d)         mean task score of domain d; S(m,~t) the mean over the other domains
//                  ("cross", the domain-identification task, is not a domain and is left out)
//   DSI(m,t)       S(m,t) / S(m,~t)
//   GG(m,t)        (S(m0,~t) - S(m,~t)) / S(m0,~t)
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gemkit {

struct LabelledReport {
  std::string label;    // e.g. "base", "fine-tuned"
  nlohmann::json report;  // a `gemkit eval` JSON report
};

struct Comparison {
  nlohmann::json json;   // per-domain perplexities and scores, per-run summary metrics
  std::string markdown;  // the same as tables
};

// reports[0] is the base model m0; the others are adapted to `target_domain`. Throws
// gemkit::Error naming the report whose content is missing or malformed.
Comparison compare_reports(const std::vector<LabelledReport>& reports, const std::string& target_domain);

}  // namespace gemkit
