// Cross-domain transfer (docs/design/gem-method.md section 6): how adapting a model to a source domain s
// moves its scores on every domain t. Torch-free.
//
//   dS(m_s,t)  = S(m_s,t) - S(m0,t)             the transfer matrix, one row per adapted model
//   CDTR(s)    = mean over t != s of dS(m_s,t) / dS(m_s,s)
//                undefined (JSON null with the reason) when the on-target gain dS(m_s,s) is
//                below kCdtrMinGain, or when s or no other domain has a score
//   perplexity form, for small models whose task scores sit near chance:
//   dP(m_s,t)  = PPL(m_s,t) / PPL(m0,t) - 1      relative perplexity change (negative: better)
//   CDTR_ppl(s)= mean over t != s of g(m_s,t) / g(m_s,s), g = -dP the relative perplexity
//                gain; undefined when g(m_s,s) < kCdtrMinGain
//
// Each figure carries an item-level bootstrap 95% interval where the reports keep per-item
// results (eval/item_bootstrap.h); otherwise item_intervals_note says why there are none. The
// JSON and markdown of a transfer matrix are written in report/transfer_report.h.
#pragma once
#include <string>
#include <vector>

#include "eval/bootstrap.h"
#include "eval/compare.h"

namespace gemkit::eval {

inline constexpr double kCdtrMinGain = 0.01;

// CDTR(s) of one adapted model from its figures and the base's; NaN when undefined, and then
// `why` (when given) says why.
double cdtr(const DomainFigures& base, const DomainFigures& adapted, const std::string& source,
            std::string* why = nullptr);
double cdtr_ppl(const DomainFigures& base, const DomainFigures& adapted, const std::string& source,
                std::string* why = nullptr);

struct TransferSource {
  std::string domain;     // s, the domain the model was adapted to
  LabelledReport report;  // m_s's report (label: the row's name)
};

struct TransferMatrix {
  std::vector<std::string> rows;     // report labels, in input order
  std::vector<std::string> sources;  // each row's s
  std::vector<std::string> domains;  // t: every domain with a score or a perplexity, sorted
  std::vector<std::vector<Interval>> score_delta;  // [row][domain] dS; NaN: missing
  std::vector<std::vector<Interval>> ppl_change;   // [row][domain] dP; NaN: missing
  std::vector<Interval> cdtr, cdtr_ppl;            // per row; NaN value: undefined
  std::vector<std::string> cdtr_why, cdtr_ppl_why;  // per row; empty when defined
  bool item_intervals = false;      // low/high are item-level bootstrap bounds (else NaN)
  std::string item_intervals_note;  // why there are none
};

// Throws gemkit::Error naming the report at fault when one is malformed.
TransferMatrix transfer_matrix(const LabelledReport& base, const std::vector<TransferSource>& adapted,
                               const BootstrapOptions& options = {});

}  // namespace gemkit::eval
