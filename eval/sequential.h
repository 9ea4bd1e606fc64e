// Sequential domains (continual learning; docs/design/gem-method.md section 6): a model adapted to domains
// d_1 .. d_T in turn, evaluated after every stage. Torch-free.
//
// Accuracy matrix R (T+1 rows, T columns): R[i][j] the score on domain d_j after stage i, row 0
// the base model m0. With the usual definitions (Lopez-Paz & Ranzato 2017, "Gradient Episodic
// Memory for Continual Learning"; Chaudhry et al. 2018, "Riemannian Walk for Incremental
// Learning"), j and i counted from 1:
//   ACC           = 1/T       sum_{j=1..T}   R[T][j]                 final average score
//   BWT           = 1/(T-1)   sum_{j=1..T-1} (R[T][j] - R[j][j])     backward transfer (< 0: forgetting)
//   FWT           = 1/(T-1)   sum_{j=2..T}   (R[j-1][j] - R[0][j])   forward transfer, against the base
//   forgetting f_j = max_{l=1..T-1} R[l][j] - R[T][j]  for j = 1..T-1   (the best earlier stage minus the final)
//   forgetting    = 1/(T-1)   sum_{j=1..T-1} f_j
// BWT, FWT and forgetting need T >= 2 (NaN otherwise). A missing entry (NaN) makes every figure
// that uses it NaN.
//
// Three matrices: "nll_fall", R[i][j] = ln PPL(m0,d_j) - ln PPL(m_i,d_j), the fall of the mean
// token NLL (nats) of d_j's held-out text from the base (higher is better like a score; row 0
// is 0): the primary one, in the loss terms of section 6, so BWT is in nats; "score", R[i][j] =
// S(m_i, d_j) (mean task score); and "ppl_gain", R[i][j] = (PPL(m0,d_j) - PPL(m_i,d_j)) /
// PPL(m0,d_j), the relative perplexity gain (kept for the earlier reports). Each figure carries an item-level bootstrap 95% interval where the reports keep
// per-item results (eval/item_bootstrap.h). The JSON and markdown of a SequentialReport are
// written in report/sequential_report.h.
#pragma once
#include <string>
#include <vector>

#include "eval/bootstrap.h"
#include "eval/compare.h"
#include "eval/transfer.h"

namespace gemkit::eval {

struct SequentialMetrics {
  double acc = 0, bwt = 0, fwt = 0, forgetting = 0;
  std::vector<double> forgetting_per_domain;  // f_j for j = 1..T-1
};

// R as above: T+1 rows (the base first) of T values. Throws gemkit::Error when the shape is wrong.
SequentialMetrics sequential_metrics(const std::vector<std::vector<double>>& R);

struct SequentialPart {
  std::vector<std::vector<Interval>> matrix;  // R with intervals
  Interval acc, bwt, fwt, forgetting;
  std::vector<Interval> forgetting_per_domain;
};

struct SequentialReport {
  std::vector<std::string> domains;  // d_1 .. d_T
  std::vector<std::string> rows;     // the base's label, then the stages' labels
  SequentialPart nll_fall, score, ppl_gain;
  bool item_intervals = false;
  std::string item_intervals_note;
};

// stages[i]: the report after stage i+1 and the domain it was adapted to. Throws gemkit::Error
// naming the report at fault when one is malformed.
SequentialReport sequential_report(const LabelledReport& base, const std::vector<TransferSource>& stages,
                                   const BootstrapOptions& options = {});

}  // namespace gemkit::eval
