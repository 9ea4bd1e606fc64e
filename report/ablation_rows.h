// The numbers of the ablation report (report/ablation_report.h) before any formatting: one Row
// per method and grid cell, each figure the mean over the cell's finished seeds with its
// interval over seeds and its item-level bootstrap interval; the base model's figures; which
// method is each target domain's baseline. The JSON, markdown, CSV and plots are written from
// an AblationTable (report/ablation_report.cpp). Torch-free.
#pragma once
#include <cmath>
#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/bootstrap.h"
#include "eval/compare.h"
#include "report/ablation_report.h"
#include "report/pareto.h"

namespace gemkit::eval {

using Figures = std::vector<DomainFigures>;  // [0] the base model, then one per finished run

// m[k]; NaN when k is absent.
inline double value_or_nan(const std::map<std::string, double>& m, const std::string& k) {
  return m.count(k) ? m.at(k) : NAN;
}
// "key=value" per grid key, joined by `sep`.
std::string grid_cell_text(const GridCell& cell, const char* sep);

// One figure of a run against the base (index 0 of the figures) and, for forgetting reduction
// and gain kept, against the baseline method's run of the same cell and seed (`baseline`: its
// index in the figures, -1: none).
struct MetricDef {
  const char* name;
  const char* title;  // markdown column
  const char* format;
  bool percent;
  std::function<double(const Figures& f, size_t run, long baseline, const std::string& target)> of;
  bool against_baseline = false;  // undefined for the baseline itself ("reference" in the table)
};
// target_nll, nll_gain, ..., CDTR_ppl: the columns of the report, in order.
const std::vector<MetricDef>& metric_defs();

struct Cell {  // one figure of one row
  Interval seeds;          // mean and interval over seeds
  Interval items;          // item-level interval of the mean (NaN bounds: none)
  std::vector<double> per_seed;
  size_t n = 0;            // seeds where the figure is defined
};

// A row in the trade-off plane (report/pareto.h) against the rows of the same target domain
// from other recipes (a WiSE-FT row "m+wise0.5" belongs to recipe m): at the means over seeds,
// and seed by seed (each seed's runs against the same seed's runs of the others).
struct RowTradeoff {
  double frontier_rise = NAN;  // the others' frontier at this row's mean gain
  double rise_ratio = NAN;     // mean off-target rise / frontier_rise
  bool beyond = false;         // beyond the others' frontier
  bool on_front = false;       // on the frontier of all rows of its target
  size_t seeds_beyond = 0, seeds_compared = 0;
};

// The recipe a method comes from: the text before the first '+' ("s01_finetune+wise0.5").
std::string method_family(const std::string& method);

struct Row {
  std::string method, label;
  GridCell cell;
  std::string target;
  std::vector<const AblationRun*> ok, failed;
  std::map<std::string, Cell> metrics, training, deployment;
  std::map<std::string, double> nll_change, ppl_change, score_delta;  // transfer row: mean over seeds, by domain
  RowTradeoff tradeoff;
};

struct AblationTable {
  const std::vector<AblationRun>* runs = nullptr;  // what the table was made from
  Figures figures;                                 // [0] the base, then each finished run's
  std::map<const AblationRun*, size_t> index;      // finished run -> its figures
  // Each target domain's baseline: the first method (in command-line order) adapting to it.
  std::map<std::string, std::string> baseline_for;
  std::vector<Row> rows;                           // method-major, then the grid cells in order
  std::set<std::string> training_keys, targets, domains;
  bool any_deployment = false;  // some finished run has deployment figures
  bool item_intervals = false;  // the reports keep per-item results
  std::string item_note;        // why there are no item-level intervals (empty when there are)

  bool is_baseline(const std::string& method, const std::string& target) const;
  // The baseline's run of the same target, cell and seed, as an index of `figures` (-1: none,
  // or `r` is a baseline run itself).
  long baseline_of(const AblationRun& r) const;
  // Figure `m` of the finished run `r`.
  double metric(const MetricDef& m, const AblationRun& r) const;
};

// `runs` must outlive the table (rows point into it). Throws gemkit::Error naming the report at
// fault when one is malformed.
AblationTable ablation_table(const AblationPlan& plan, const nlohmann::json& base_eval,
                             const std::vector<AblationRun>& runs, const BootstrapOptions& options);

}  // namespace gemkit::eval
