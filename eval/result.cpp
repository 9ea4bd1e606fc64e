#include "eval/result.h"

namespace gemkit::eval {

const Figure* Result::figure(const std::string& name) const {
  for (const Figure& f : figures)
    if (f.name == name) return &f;
  return nullptr;
}

std::map<std::string, DomainScore> domain_scores(const Report& report) {
  std::map<std::string, DomainScore> s;
  for (const Result& r : report.results) {
    if (r.kind == "perplexity" || !r.skipped.empty()) continue;
    const Figure* f = r.figure(r.primary);
    if (!f) continue;
    s[r.domain].score += f->ci.value;
    s[r.domain].tasks += 1;
  }
  for (auto& [d, v] : s) v.score /= v.tasks;
  return s;
}

}  // namespace gemkit::eval
