// Item-level bootstrap intervals for figures that combine several `gemkit eval` reports (CDTR,
// the sequential-domain metrics, the ablation report's gains and drifts). Torch-free.
//
// A report keeps per-item results when every evaluated result carries "per_item":
//   perplexity:                       {"nll": [summed NLL per document], "tokens": [scored tokens per document]}
//   multiple_choice, classification:  {"gold": [label index per item], "pred": [predicted index per item],
//                                      "num_classes": K (macro_f1 only)}
// A resample draws, for every result (task or perplexity corpus) separately, as many items as
// it has with replacement, with the same indices for every report, so that differences between
// models are paired; each report's figures are then recomputed (perplexity exp(sum nll / sum
// tokens), the task's primary figure from gold and pred, S(m,d) their mean per domain).
//
// `gemkit eval` writes "per_item" (eval/result.h, report/eval_report.h); for older reports
// without it available() is false, reason() says so, and intervals have NaN bounds. Intervals
// are written as JSON and text by report/interval_format.h.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "eval/bootstrap.h"
#include "eval/compare.h"

namespace gemkit::eval {

class ItemBootstrap {
 public:
  // `reports`: the models' reports on the same test items. Malformed per-item results are
  // errors naming the report and the result; missing or mismatched ones make it unavailable.
  explicit ItemBootstrap(const std::vector<LabelledReport>& reports, const BootstrapOptions& options = {});

  bool available() const { return reason_.empty(); }
  const std::string& reason() const { return reason_; }  // why not, when unavailable
  const std::vector<DomainFigures>& full() const { return full_; }  // the reports' own figures

  // value: metric(the reports' own figures, in order); low, high: percentile bounds of the
  // metric over the resamples, NaN when it is not finite on any one resample (an undefined
  // figure has no interval; resamples are never dropped) or the bootstrap is unavailable.
  Interval interval(const std::function<double(const std::vector<DomainFigures>&)>& metric) const;

 private:
  std::string reason_;
  double confidence_ = 0.95;
  std::vector<DomainFigures> full_;
  std::vector<std::vector<DomainFigures>> draws_;  // [resample][report]
};

}  // namespace gemkit::eval
