// Comparing evaluation reports (`gemkit eval` JSON) of a base model and models adapted to a target
// domain: the loss, perplexity and score metrics of docs/design/gem-method.md section 6. Torch-free.
//
// In loss terms (the headline; L(m,d) = log PPL(m,d), the mean token NLL in nats):
//   NLL gain       G(m,t) = L(m0,t) - L(m,t)
//   rise           R(m,d) = L(m,d) - L(m0,d)
//   off-target rise R_off(m,t): the mean of R(m,d) over every domain d other than t and "general"
//                  (the replay pool, which replay methods train on): the other suite domains and the
//                  held-out general probe when the reports have it
//   general rise   R(m,general), the replayed corpus, reported on its own
//   probe rise     R(m,general_probe), general English that no method trains on
//   gain kept of X against plain fine-tuning FT: G(X,t) / G(FT,t) (undefined when G(FT,t) <= 0)
//   forgetting reduction: 1 - R_off(X,t) / R_off(FT,t) (undefined when R_off(FT,t) <= 0)
// Perplexity forms (extra columns):
//   domain gain    (PPL(m0,t) - PPL(m,t)) / PPL(m0,t)
//   general drift  PPL(m,general) / PPL(m0,general) - 1
//   S(m,d)         mean task score of domain d; S(m,~t) the mean over the other domains
//                  ("cross", the domain-identification task, is not a domain and is left out)
//   DSI(m,t)       S(m,t) / S(m,~t)
//   GG(m,t)        (S(m0,~t) - S(m,~t)) / S(m0,~t)
//
// The pieces (domain_figures, section_six, forgetting_reduction) serve the other report
// metrics too: eval/transfer.h (CDTR), eval/sequential.h, report/ablation_rows.h. The JSON and
// markdown of a comparison are written in report/compare_report.h.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gemkit {

struct LabelledReport {
  std::string label;    // e.g. "base", "fine-tuned"
  nlohmann::json report;  // a `gemkit eval` JSON report
};

inline constexpr const char* kGeneralDomain = "general";
inline constexpr const char* kGeneralProbe = "general_probe";  // held-out general English (DATA.md)

// A task's own metric (its "primary" figure: accuracy or macro-F1) with its 95% interval.
struct TaskScore {
  std::string domain, metric, method;  // method tells how items were put: "loglik", "loglik_chat", ...
  double value = NAN, low = NAN, high = NAN;
};

// What section 6 reads of one report, by domain.
struct DomainFigures {
  std::map<std::string, double> perplexity;  // the "perplexity" results (skipped ones left out)
  std::map<std::string, double> score;       // S(m,d) from "domain_scores" ("cross" left out)
  std::map<std::string, TaskScore> tasks;    // by task key ("law/spdx_osi"), skipped ones left out
};

// Throws gemkit::Error naming the report, the result and the field when the content is missing
// or malformed ("report base: results[2]: figures.perplexity.value: expected a number").
DomainFigures domain_figures(const LabelledReport& r);

// S(m,~t): the mean of `score` over the domains other than `target` (NaN when there are none).
double score_off_target(const std::map<std::string, double>& score, const std::string& target);

// The section-6 figures of model m against the base m0 for target domain t. NaN where a figure
// is missing from a report (or, for the base itself, is a ratio of zeros).
struct SectionSix {
  double nll_gain, off_target_rise, general_rise, probe_rise;  // nats
  double domain_gain, general_drift, S_target, S_other, DSI, GG;
};
SectionSix section_six(const DomainFigures& base, const DomainFigures& m, const std::string& target);

// R(m,d) = log PPL(m,d) - log PPL(m0,d): NaN when either perplexity is missing.
double nll_rise(const DomainFigures& base, const DomainFigures& m, const std::string& domain);

// The domains R_off averages for `target`: those with a base perplexity, less the target and the
// replayed general corpus. R_off is NaN when one of them has no perplexity in m (never a mean
// over whatever happens to be there) or when there are none.
std::vector<std::string> off_target_domains(const DomainFigures& base, const std::string& target);

// 1 - rise / reference_rise: NaN when reference_rise <= 0 (plain fine-tuning did not forget, so
// there is nothing to reduce) or either is not finite.
double forgetting_reduction(double rise, double reference_rise);

// gain / reference_gain: NaN when reference_gain <= 0 or either is not finite.
double gain_kept(double gain, double reference_gain);

// One report of a comparison, against the base m0 (reports[0]).
struct ComparedRun {
  std::string label;
  std::map<std::string, double> perplexity;  // by domain (skipped results left out)
  std::map<std::string, TaskScore> tasks;    // by task key
  SectionSix six;  // the base's own gains and rises are 0
  // Against the first adapted run (plain fine-tuning), in loss terms: NaN for the base and for
  // that run.
  double gain_kept = NAN, forgetting_reduction = NAN;
};

// The figures of `gemkit compare --target`, before any formatting (report/compare_report.h
// writes them as JSON and markdown).
struct ComparisonFigures {
  std::string target;
  std::vector<std::string> domains;  // the domains the base has a perplexity for, sorted
  // Every task of any report: the target domain's first, then by key. A table of these puts
  // reports of one model side by side too (its tasks as running text and through its chat template).
  std::vector<std::string> task_keys;
  std::vector<ComparedRun> runs;     // the base first, then the adapted models, in input order
};

// reports[0] is the base model m0; the others are adapted to `target_domain`. Throws
// gemkit::Error naming the report whose content is missing or malformed, or when the target
// domain is in none of the reports.
ComparisonFigures compare_figures(const std::vector<LabelledReport>& reports, const std::string& target_domain);

}  // namespace gemkit
