// The report of `gemkit ablate` (docs/design/gem-method.md section 7): training methods
// (recipes) crossed with a grid of recipe overrides, each over several seeds, all evaluated on
// the same suite against the same base model. Torch-free.
//
// One row per method and grid cell, each figure the mean over the cell's seeds with a 95%
// interval over seeds (eval/seed_interval.h: mean +- t(0.975, n-1) sd / sqrt(n); none with one
// seed), and an item-level bootstrap 95% interval of that mean where the eval reports keep
// per-item results (eval/item_bootstrap.h):
//   target_nll, nll_gain            mean token NLL (nats) on the target and its fall G
//   off_target_rise                 R_off: the mean NLL rise over every domain but the target and
//                                   the replayed "general" (the held-out general_probe included)
//   probe_rise, general_rise        the rise on general_probe and on the replayed general corpus
//   gain_kept                       G / G of the first method (plain fine-tuning) in the same grid
//                                   cell with the same seed (undefined when that G <= 0)
//   forgetting_reduction            1 - R_off / R_off of that baseline run (undefined when <= 0)
//   target_ppl, domain_gain, general_ppl, general_drift, gain_kept_ppl: the perplexity forms
//   S_target, S_other, DSI, GG      task scores (macro-F1 / accuracy) on and off the target
//   CDTR, CDTR_ppl                  cross-domain transfer (eval/transfer.h), mean over the seeds
//                                   where it is defined
//   tokens_per_s                    mean training throughput (metrics.jsonl "tokens_per_s")
//   train/<key>                     final value of every "dtr/", "scar/", "akp/" metric logged
//   deployment/<key>                the exported model run by gemkit-run (RUN/deploy.json):
//                                   file_mb, decode_tok_s, prompt_tok_s, peak_rss_mb,
//                                   realised_capacity
//
// The rows are computed in report/ablation_rows.h, then written as JSON, markdown, CSV and plots.
// Files (write_ablation_report): report.json, report.csv, report.md, and SVG plots:
// tradeoff.svg (off-target NLL rise against NLL gain, a panel per target domain, one point per
// row with interval bars and the Pareto frontier of all rows; the table beside it places each row
// against the frontier of the other recipes' rows, report/pareto.h), transfer_heatmap.svg (the
// NLL-rise transfer matrix, when rows have several target domains) and routing_stats.svg (bar charts of the train/ statistics, when there are any).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/bootstrap.h"
#include "eval/seed_interval.h"  // seed_interval: the intervals over seeds
#include "report/run_metrics.h"

namespace gemkit::eval {

// A grid cell: (key, value) per --grid key, in --grid order.
using GridCell = std::vector<std::pair<std::string, std::string>>;
using Grid = std::vector<std::pair<std::string, std::vector<std::string>>>;  // key -> values

// Every combination of the grid's values, the first key varying slowest ({{}} for no grid).
std::vector<GridCell> grid_cells(const Grid& grid);

// One training run of the grid: a method, a grid cell, a seed.
struct AblationRun {
  std::string name;    // run folder name: <method>[__key=value...]__seed<s>
  std::string method;  // the recipe's file stem
  GridCell cell;
  int64_t seed = 0;
  std::string target;         // the domain the run adapts to
  bool ok = false;            // trained and evaluated
  std::string error;          // why not, when !ok
  nlohmann::json eval;        // its `gemkit eval` report (when ok)
  // "tokens_per_s" (mean), final "dtr/..", "scar/..", "akp/.." and the evaluation's routing
  // statistics (evaluation_routing: "eval/general/..", "eval/target/..")
  std::map<std::string, double> training;
  std::map<std::string, double> deployment;  // deployment_figures() of RUN/deploy.json; empty: not measured
};

// The report names a run's own domain expert by its role: "...scar/load/<target>" becomes
// "...scar/load/target" (other keys are returned as they are), so that runs adapting to different
// domains share one column and one plot panel.
std::string expert_by_role(const std::string& key, const std::string& target);

// Routing statistics the evaluation measured (a `gemkit eval` report's perplexity results'
// "stats"): "eval/general/<key>" on the general text and "eval/target/<key>" on the target
// domain's, for every "scar/" and "dtr/" key (e.g. eval/general/scar/load/general: the share of
// general text's routing decisions that went to the general expert), with expert_by_role's names.
// Empty for a model without routing.
std::map<std::string, double> evaluation_routing(const nlohmann::json& eval_report, const std::string& target);

// The figures of a `gemkit-run --bench` JSON line the report shows (kDeploymentKeys); missing
// or non-numeric fields are left out.
extern const char* const kDeploymentKeys[5];
std::map<std::string, double> deployment_figures(const nlohmann::json& bench);

struct AblationPlan {
  std::vector<std::string> methods;  // recipe stems in command-line order; the first is the baseline
  Grid grid;
  int64_t seeds = 1;
  nlohmann::json settings;  // recorded as is (eval corpus, tasks, split, max items, command)
  std::vector<std::string> unfinished;  // runs of the plan left out of the report (not finished yet)
};

// tokens_per_s: the mean over the run's steps; dtr/, scar/, akp/ metrics: their last value (the
// target domain's expert named by expert_by_role).
std::map<std::string, double> training_figures(const RunMetrics& metrics, const std::string& target);

struct AblationReport {
  nlohmann::json json;
  std::string markdown, csv;
  std::map<std::string, std::string> plots;  // file name -> SVG
};

// `base_eval`: the base model's `gemkit eval` report; `runs`: every run, failed ones included.
// Throws gemkit::Error naming the report at fault when one is malformed.
AblationReport ablation_report(const AblationPlan& plan, const nlohmann::json& base_eval,
                               const std::vector<AblationRun>& runs, const BootstrapOptions& options = {});

// Writes report.json, report.csv, report.md and the plots into `out_dir`, atomically.
void write_ablation_report(const AblationReport& report, const std::string& out_dir);

}  // namespace gemkit::eval
