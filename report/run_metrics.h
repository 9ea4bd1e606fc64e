// Reads a training run's metrics.jsonl (train/metrics_log.h writes it): one JSON object per
// line with "step" and numeric fields (loss, lr, grad_norm, tokens_per_s, val_loss, ...).
// Fields that are absent or not numbers on a line are simply missing at that step, so metrics
// logged at different intervals (val_loss every N steps) each keep their own points. Torch-free.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace gemkit::eval {

struct MetricSeries {
  std::vector<double> steps;
  std::vector<double> values;
};

struct RunMetrics {
  std::string path;
  std::map<std::string, MetricSeries> series;  // by field name; "step" itself is not a series
  std::vector<std::string> order;              // field names in order of first appearance
};

// A missing file, a line that is not a JSON object or lacks a numeric "step" are errors
// naming file and line. A truncated last line (a run killed mid-write) is skipped.
RunMetrics read_run_metrics(const std::string& path);

}  // namespace gemkit::eval
