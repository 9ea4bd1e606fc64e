// One model serving every domain (docs/multi-domain.md): how much of each domain's own
// fine-tuning gain a single model keeps, and what it costs off target. Torch-free.
//
// Inputs: the base m0's report, one oracle report per domain d (a model fine-tuned on d alone:
// what a device with a model per domain could run) and the reports of the single models to
// judge (multi-domain GEM, the mixture model, the merges, the last stage of a sequential run).
// In the loss terms of section 6 (L(m,d) = log PPL(m,d), nats):
//   fall          F(m,d) = L(m0,d) - L(m,d)              each domain's held-out text
//   oracle share  F(m,d) / F(o_d,d)        undefined (NaN) when F(o_d,d) < kMinOracleFall: a
//                 domain its own fine-tuning did not improve cannot say how much of the
//                 improvement another model keeps (a near-zero divisor makes the share noise)
//   mean fall     the mean of F(m,d) over the domains
//   mean share, lowest share   over the domains whose share is defined (each domain weighted
//                 alike, whatever its scale in nats); undefined when none is
//   probe rise    L(m,general_probe) - L(m0,general_probe)  general English no method trains on;
//                 as a perplexity change exp(rise) - 1 too
//   general rise  the same on the replayed general corpus, reported on its own
// Every figure carries an item-level bootstrap interval (eval/item_bootstrap.h), paired across
// all the reports; the JSON and markdown are written in report/multi_domain_report.h.
// Routing (models with SCAR experts): the share of each domain's routing decisions that go first
// to that domain's expert, and of the general probe's that go first to the general expert.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "eval/bootstrap.h"
#include "eval/compare.h"

namespace gemkit::eval {

inline constexpr double kMinOracleFall = 0.01;  // nats: about a 1% lower perplexity

struct MultiDomainRow {
  std::string label;
  std::vector<Interval> fall, oracle_share;  // per domain
  Interval mean_fall, mean_oracle_share, min_oracle_share, probe_rise, probe_ppl_change, general_rise;
  // Routed models (SCAR): per domain, the share of routing decisions on its test text whose
  // first choice is that domain's expert ("scar/load/<d>" of the report), and the share on the
  // general probe whose first choice is the general expert. NaN where the report has no routing.
  std::vector<double> routed_to_own;
  double probe_to_general = NAN;
  bool routed() const;
};

struct MultiDomainReport {
  std::vector<std::string> domains;
  std::vector<MultiDomainRow> oracle;  // each oracle's own row (its share of itself is 1 on its domain)
  std::vector<MultiDomainRow> models;
  std::vector<std::string> unjudged;  // domains whose oracle fell less than kMinOracleFall (no shares)
  bool item_intervals = false;
  std::string item_intervals_note;
};

// oracles[k]: the model fine-tuned on domains[k] alone. Throws gemkit::Error when the counts
// differ or a report is malformed.
MultiDomainReport multi_domain_report(const LabelledReport& base, const std::vector<std::string>& domains,
                                      const std::vector<LabelledReport>& oracles,
                                      const std::vector<LabelledReport>& models, const BootstrapOptions& options = {});

}  // namespace gemkit::eval
