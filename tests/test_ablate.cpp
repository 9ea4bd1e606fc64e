// `gemkit ablate`: the report math on hand-made evaluation reports (report/ablation_report.h), and
// the command end to end through the built binary on a tiny random model: run folders, DONE
// markers, report files whose numbers match the runs' eval.json, a failing run reported while
// the others go on, a run killed halfway resumed from its checkpoint, finished runs skipped.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ablate/grid_estimate.h"
#include "ablate/plan.h"
#include "core/file_io.h"
#include "report/ablation_report.h"
#include "report/eval_report.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace gemkit;
using namespace gemkit::eval;
using namespace gemkit::ablate;

namespace {

// A `gemkit eval` report (through report/eval_report.h) with one perplexity result per domain
// and one classification task per domain score.
json eval_json(const std::map<std::string, double>& ppl, const std::map<std::string, double>& scores) {
  Report r;
  for (const auto& [d, v] : ppl) {
    Result res;
    res.kind = "perplexity", res.key = d, res.domain = d, res.primary = "perplexity", res.items = 4;
    res.figures.push_back({"perplexity", {v, v, v}});
    r.results.push_back(res);
  }
  for (const auto& [d, v] : scores) {
    Result res;
    res.kind = "classification", res.key = d + "/task", res.domain = d, res.primary = "macro_f1", res.items = 4;
    res.figures.push_back({"macro_f1", {v, v, v}});
    r.results.push_back(res);
  }
  return to_json(r);
}

AblationRun run(const std::string& method, const std::string& lr, int64_t seed, const std::string& target,
                const json& eval, double tokens_per_s) {
  AblationRun r;
  r.method = method;
  r.cell = {{"train.lr", lr}};
  r.seed = seed;
  r.name = method + "__train.lr=" + lr + "__seed" + std::to_string(seed);
  r.target = target;
  r.ok = !eval.is_null();
  r.error = r.ok ? "" : "training failed (exit 1; log: x/log.txt)";
  r.eval = eval;
  if (r.ok) r.training = {{"tokens_per_s", tokens_per_s}, {"dtr/capacity", 0.5 + 0.25 * double(seed)}};
  return r;
}

const json& row(const json& report, const std::string& label) {
  for (const json& r : report.at("rows"))
    if (r.at("label") == label) return r;
  throw std::runtime_error("no row " + label);
}

}  // namespace

TEST(AblationReport, SeedIntervalsAndTrainingFigures) {
  // mean 2, sd 1, t(0.975, 2) = 4.3027: 2 +- 4.3027 / sqrt(3)
  const Interval i = seed_interval({1, 2, 3, NAN});
  EXPECT_DOUBLE_EQ(i.value, 2);
  EXPECT_NEAR(i.high - 2, 4.3027 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(2 - i.low, 4.3027 / std::sqrt(3.0), 1e-12);
  const Interval one = seed_interval({0.5});
  EXPECT_EQ(one.value, 0.5);
  EXPECT_TRUE(std::isnan(one.low) && std::isnan(one.high));
  EXPECT_TRUE(std::isnan(seed_interval({}).value));
  // Beyond the table, close to the normal quantile.
  const Interval many = seed_interval(std::vector<double>(1001, 1.0));
  EXPECT_EQ(many.low, 1.0);

  RunMetrics m;
  m.series["tokens_per_s"] = {{1, 2, 3}, {100, 200, 600}};
  m.series["dtr/capacity"] = {{1, 2, 3}, {1.0, 0.75, 0.5}};
  m.series["loss"] = {{1, 2, 3}, {3, 2, 1}};
  m.series["scar/load/law"] = {{1, 2, 3}, {0.5, 0.6, 0.7}};
  m.series["scar/load/general"] = {{1, 2, 3}, {0.5, 0.4, 0.3}};
  const std::map<std::string, double> f = training_figures(m, "law");
  EXPECT_EQ(f, (std::map<std::string, double>{
                   {"dtr/capacity", 0.5}, {"scar/load/general", 0.3}, {"scar/load/target", 0.7}, {"tokens_per_s", 300}}));
  // Only the run's own expert is renamed, and only as a whole key segment.
  EXPECT_EQ(training_figures(m, "finance").count("scar/load/law"), 1u);
  EXPECT_EQ(expert_by_role("eval/general/scar/load/law", "law"), "eval/general/scar/load/target");
  EXPECT_EQ(expert_by_role("scar/load/biglaw", "law"), "scar/load/biglaw");
  EXPECT_EQ(expert_by_role("scar/load/general", "general"), "scar/load/general");

  const std::vector<GridCell> cells = grid_cells({{"a", {"1", "2"}}, {"b", {"x", "y"}}});
  ASSERT_EQ(cells.size(), 4u);
  EXPECT_EQ(cells[1], (GridCell{{"a", "1"}, {"b", "y"}}));
  EXPECT_EQ(grid_cells({}).size(), 1u);
}

// Base: PPL law 100, general 50, finance 80; S law 0.25, general 0.5, finance 0.25.
//   ft  lr=1 seed0: law 80, general 60   -> gain 0.2, drift 0.2
//   ft  lr=1 seed1: law 90, general 55   -> gain 0.1, drift 0.1     row: gain 0.15 +- 12.7062 * 0.0707107 / sqrt(2)
//   gem lr=1 seed0: law 80, general 52   -> drift 0.04, reduction 1 - 0.04/0.2 = 0.8
//                   S law 0.75, general 0.375, finance 0.5 -> CDTR mean(0.25/0.5, -0.125/0.5) = 0.125
//   gem lr=1 seed1: law 85, general 52.5 -> drift 0.05, reduction 1 - 0.05/0.1 = 0.5; row 0.65
//                   S law 0.255: on-target gain 0.005 < 0.01 -> CDTR undefined; row CDTR 0.125 (n = 1)
//   ft  lr=2 seed0: law 75, general 75 (drift 0.5); seed1 failed
//   gem lr=2 (target finance) seed0: finance 40 (gain 0.5), general 50 (drift 0); gem is the first
//                   method adapting to finance, so it is finance's baseline: no reduction
TEST(AblationReport, EvaluationRoutingStatisticsOnGeneralAndTargetText) {
  json e = eval_json({{"law", 80}, {"general", 60}, {"finance", 70}}, {});
  for (json& r : e["results"]) {
    const std::string d = r["domain"];
    r["stats"] = {{"scar/load/general", d == "general" ? 0.9 : d == "law" ? 0.2 : 0.5},
                  {"scar/load/law", d == "general" ? 0.1 : d == "law" ? 0.8 : 0.5},
                  {"dtr/realised_capacity", 0.6},
                  {"tokens", 100.0},
                  {"scar/note", "text"}};
  }
  const auto m = evaluation_routing(e, "law");
  EXPECT_EQ(m.size(), 6u);  // scar/ and dtr/ numbers of general and law only
  EXPECT_EQ(m.at("eval/general/scar/load/general"), 0.9);
  EXPECT_EQ(m.at("eval/target/scar/load/general"), 0.2);
  EXPECT_EQ(m.at("eval/general/scar/load/target"), 0.1);  // the law expert, named by its role
  EXPECT_EQ(m.at("eval/target/scar/load/target"), 0.8);
  EXPECT_EQ(m.at("eval/target/dtr/realised_capacity"), 0.6);
  EXPECT_TRUE(evaluation_routing(eval_json({{"law", 80}}, {}), "law").empty());  // no routing
  EXPECT_TRUE(evaluation_routing(json::object(), "law").empty());
}

TEST(AblationReport, RowsFromHandMadeReports) {
  const json base = eval_json({{"law", 100}, {"general", 50}, {"finance", 80}},
                              {{"law", 0.25}, {"general", 0.5}, {"finance", 0.25}});
  const std::map<std::string, double> s0 = {{"law", 0.25}, {"general", 0.5}, {"finance", 0.25}};
  AblationPlan plan;
  plan.methods = {"ft", "gem"};
  plan.grid = {{"train.lr", {"1", "2"}}};
  plan.seeds = 2;
  const std::vector<AblationRun> runs = {
      run("ft", "1", 0, "law", eval_json({{"law", 80}, {"general", 60}, {"finance", 88}}, s0), 1000),
      run("ft", "1", 1, "law", eval_json({{"law", 90}, {"general", 55}, {"finance", 80}}, s0), 3000),
      run("ft", "2", 0, "law", eval_json({{"law", 75}, {"general", 75}, {"finance", 80}}, s0), 1000),
      run("ft", "2", 1, "law", nullptr, 0),
      run("gem", "1", 0, "law",
          eval_json({{"law", 80}, {"general", 52}, {"finance", 80}}, {{"law", 0.75}, {"general", 0.375}, {"finance", 0.5}}),
          500),
      run("gem", "1", 1, "law",
          eval_json({{"law", 85}, {"general", 52.5}, {"finance", 80}}, {{"law", 0.255}, {"general", 0.5}, {"finance", 0.25}}),
          700),
      run("gem", "2", 0, "finance", eval_json({{"law", 100}, {"general", 50}, {"finance", 40}}, s0), 500),
      run("gem", "2", 1, "finance", eval_json({{"law", 100}, {"general", 50}, {"finance", 40}}, s0), 500),
  };
  const AblationReport r = ablation_report(plan, base, runs);
  const json& j = r.json;
  ASSERT_EQ(j["rows"].size(), 4u);
  EXPECT_EQ(j["rows"][1]["label"], "ft [train.lr=2]");  // method-major, then the grid cells

  const json& ft1 = row(j, "ft [train.lr=1]")["metrics"];
  const double half = 12.7062 * std::sqrt(0.005) / std::sqrt(2.0);  // sd of {0.2, 0.1} = sqrt(0.005)
  EXPECT_NEAR(ft1["domain_gain"]["mean"].get<double>(), 0.15, 1e-12);
  EXPECT_NEAR(ft1["domain_gain"]["low"].get<double>(), 0.15 - half, 1e-9);
  EXPECT_NEAR(ft1["domain_gain"]["high"].get<double>(), 0.15 + half, 1e-9);
  EXPECT_EQ(ft1["domain_gain"]["n"], 2);
  EXPECT_NEAR(ft1["general_drift"]["mean"].get<double>(), 0.15, 1e-12);
  EXPECT_EQ(ft1["target_ppl"]["mean"].get<double>(), 85);
  EXPECT_TRUE(ft1["forgetting_reduction"]["mean"].is_null());  // the baseline itself
  EXPECT_FALSE(ft1["domain_gain"].contains("item_interval"));  // no per-item results

  // Off target (finance; general is the replayed corpus): ft seed 0 rises log 1.1, seed 1 not at all.
  EXPECT_NEAR(ft1["off_target_rise"]["per_seed"][0].get<double>(), std::log(1.1), 1e-12);
  EXPECT_NEAR(ft1["nll_gain"]["mean"].get<double>(), (std::log(100.0 / 80) + std::log(100.0 / 90)) / 2, 1e-12);
  const json& gem1 = row(j, "gem [train.lr=1]")["metrics"];
  // Forgetting reduction: seed 0 1 - 0 / log 1.1; seed 1 n/a (the baseline did not forget), so
  // the mean is over one seed.
  EXPECT_NEAR(gem1["forgetting_reduction"]["per_seed"][0].get<double>(), 1.0, 1e-12);
  EXPECT_TRUE(gem1["forgetting_reduction"]["per_seed"][1].is_null());
  EXPECT_NEAR(gem1["forgetting_reduction"]["mean"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(gem1["forgetting_reduction"]["n"], 1);
  // Gain kept in loss terms: seed 0 as its baseline (1.0), seed 1 log(100/85) / log(100/90);
  // the perplexity form: 0.15 / 0.1.
  EXPECT_NEAR(gem1["gain_kept"]["per_seed"][0].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(gem1["gain_kept"]["per_seed"][1].get<double>(), std::log(100.0 / 85) / std::log(100.0 / 90), 1e-12);
  EXPECT_NEAR(gem1["gain_kept_ppl"]["per_seed"][1].get<double>(), 1.5, 1e-12);
  EXPECT_NEAR(gem1["gain_kept_ppl"]["mean"].get<double>(), 1.25, 1e-12);
  EXPECT_TRUE(ft1["gain_kept"]["mean"].is_null());  // the baseline itself
  EXPECT_EQ(gem1["CDTR"]["mean"].get<double>(), 0.125);
  EXPECT_EQ(gem1["CDTR"]["n"], 1);
  EXPECT_TRUE(gem1["CDTR"]["per_seed"][1].is_null());

  const json& ft2 = row(j, "ft [train.lr=2]");
  EXPECT_EQ(ft2["seeds"], json::array({0}));
  EXPECT_EQ(ft2["failed_seeds"], json::array({1}));
  EXPECT_TRUE(ft2["metrics"]["domain_gain"]["low"].is_null());  // one seed: no interval

  const json& gem2 = row(j, "gem [train.lr=2]");
  EXPECT_EQ(gem2["target"], "finance");
  EXPECT_NEAR(gem2["metrics"]["domain_gain"]["mean"].get<double>(), 0.5, 1e-12);
  EXPECT_TRUE(gem2["metrics"]["forgetting_reduction"]["mean"].is_null());  // finance's own baseline
  EXPECT_EQ(j["baselines"]["finance"], "gem");
  EXPECT_EQ(j["baselines"]["law"], "ft");

  // Training figures: tokens/s mean over seeds, final routing statistics.
  EXPECT_EQ(row(j, "ft [train.lr=1]")["training"]["tokens_per_s"]["mean"].get<double>(), 2000);
  EXPECT_EQ(row(j, "gem [train.lr=1]")["training"]["dtr/capacity"]["mean"].get<double>(), 0.625);
  // Per run, and the transfer rows.
  for (const json& run : j["runs"])
    if (run["name"] == "gem__train.lr=1__seed0") {
      EXPECT_NEAR(run["metrics"]["forgetting_reduction"].get<double>(), 1.0, 1e-12);
    }
  EXPECT_NEAR(j["transfer"]["rows"][0]["ppl_change"]["general"].get<double>(), 0.15, 1e-12);
  EXPECT_NEAR(j["transfer"]["rows"][0]["nll_rise"]["general"].get<double>(), (std::log(1.2) + std::log(1.1)) / 2, 1e-12);

  // The trade-off plane for law: ft [lr=2] (gain log 4/3, no rise) dominates ft [lr=1], so the
  // frontier of gem's others is flat at 0 up to that gain: gem lies on that line, dominated by
  // ft [lr=2] (more gain, the same rise), so neither beyond it nor on the frontier of all. Seed by
  // seed, gem's seed 1 lies past the only other seed-1 run's gain (ft [lr=2] seed 1 failed).
  const json& gem_trade = row(j, "gem [train.lr=1]")["tradeoff"];
  EXPECT_EQ(gem_trade["others_frontier_rise"].get<double>(), 0.0);
  EXPECT_TRUE(gem_trade["rise_ratio"].is_null());
  EXPECT_FALSE(gem_trade["beyond_others"].get<bool>());
  EXPECT_EQ(gem_trade["seeds_beyond"], 1);
  EXPECT_EQ(gem_trade["seeds_compared"], 2);
  EXPECT_FALSE(gem_trade["on_frontier_of_all"].get<bool>());
  EXPECT_FALSE(row(j, "ft [train.lr=1]")["tradeoff"]["on_frontier_of_all"].get<bool>());
  EXPECT_TRUE(row(j, "ft [train.lr=2]")["tradeoff"]["on_frontier_of_all"].get<bool>());
  EXPECT_FALSE(j["item_intervals"].get<bool>());

  // The files: plots (the heatmap because there are two targets), markdown, CSV.
  EXPECT_EQ(r.plots.size(), 3u);
  for (const char* f : {"tradeoff.svg", "transfer_heatmap.svg", "routing_stats.svg"}) {
    ASSERT_TRUE(r.plots.count(f)) << f;
    EXPECT_EQ(r.plots.at(f).rfind("<?xml", 0), 0u) << f;
  }
  EXPECT_NE(r.markdown.find("| ft [train.lr=1] | 2 | law | 4.4409 ["), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("### law\n\n| method | NLL gain |"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("| ft [train.lr=2] | 1 (1 failed) | law |"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("- ft__train.lr=2__seed1: training failed"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("Not available: report base keeps no per-item results"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("exported model size, latency and peak memory"), std::string::npos) << r.markdown;
  std::istringstream csv(r.csv);
  std::vector<std::string> lines;
  for (std::string line; std::getline(csv, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].rfind("method,grid,target,seeds,failed_seeds,target_nll,target_nll_low,", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("ft,train.lr=1,law,2,0,4.44092,", 0), 0u) << lines[1];

  // Deployment figures (RUN/deploy.json): mean over seeds, a markdown table, CSV columns.
  std::vector<AblationRun> deployed = runs;
  deployed[0].deployment = deployment_figures(json{{"file_mb", 6.0}, {"decode_tok_s", 3000.0}, {"peak_rss_mb", 20.0},
                                                   {"prompt_tok_s", 9000.0}, {"realised_capacity", 1.0}, {"kernels", "avx512"}});
  deployed[1].deployment = deployment_figures(json{{"file_mb", 8.0}, {"decode_tok_s", "fast"}});  // non-numbers left out
  EXPECT_EQ(deployed[1].deployment.size(), 1u);
  const AblationReport d = ablation_report(plan, base, deployed);
  const json& ft1_deployed = row(d.json, "ft [train.lr=1]")["deployment"];
  EXPECT_EQ(ft1_deployed["file_mb"]["mean"].get<double>(), 7.0);
  EXPECT_EQ(ft1_deployed["decode_tok_s"]["mean"].get<double>(), 3000.0);
  EXPECT_EQ(ft1_deployed["decode_tok_s"]["n"], 1);
  EXPECT_TRUE(row(d.json, "gem [train.lr=1]")["deployment"]["file_mb"]["mean"].is_null());
  EXPECT_NE(d.markdown.find("## Exported model"), std::string::npos) << d.markdown;
  EXPECT_NE(d.markdown.find("| ft [train.lr=1] | 7.00 ["), std::string::npos) << d.markdown;
  EXPECT_EQ(d.markdown.find("exported model size, latency and peak memory"), std::string::npos) << d.markdown;
  std::istringstream dcsv(d.csv);
  std::string header, first;
  std::getline(dcsv, header);
  std::getline(dcsv, first);
  EXPECT_NE(header.find(",deployment/file_mb,deployment/file_mb_low,"), std::string::npos) << header;
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), std::count(first.begin(), first.end(), ',')) << header << "\n" << first;

  // A malformed run report names the run.
  std::vector<AblationRun> bad = runs;
  bad[0].eval.erase("results");
  gemkit::test::expect_error([&] { ablation_report(plan, base, bad); }, {"report ft__train.lr=1__seed0", "results"});
}

// ---------------------------------------------------------------------------------------------
// End to end through the binary.

namespace {

const std::string kSource = GEMKIT_SOURCE_DIR;
const std::string kBin = GEMKIT_BIN;

std::string quote(const std::string& s) { return "'" + s + "'"; }

struct Outcome {
  int code = -1;
  std::string out;
};

// `env gemkit ARGS...` from the source root under a deadline; stdout and stderr together.
Outcome run_gemkit(const std::vector<std::string>& args, const std::string& env, const std::string& log) {
  std::string cmd = "cd " + quote(kSource) + " && env OMP_NUM_THREADS=1 " + env + " timeout 300 " + quote(kBin);
  for (const std::string& a : args) cmd += " " + quote(a);
  cmd += " > " + quote(log) + " 2>&1";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text_file(log)};
}

int64_t mtime_ns(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

// The time left comes from work still to do at measured rates: a grid whose first finished runs
// only needed evaluating must not look as fast as them.
TEST(GridEstimate, TimeLeftFromStepsAndEvaluationsStillToDo) {
  GridEstimate e;
  for (int i = 0; i < 3; ++i) e.plan(300, 1);  // three runs of 300 steps, each evaluated
  e.plan(0, 1);                                // a trained run copied in: evaluation only
  EXPECT_FALSE(e.seconds_left(2, 4).has_value());  // nothing timed yet
  e.evaluated(400);                                // the copied run: 400 s of evaluation
  EXPECT_FALSE(e.seconds_left(2, 3).has_value());  // training not timed yet: no guess
  e.trained(300, 600);                             // 2 s a step
  // Left: 600 steps x 2 s + 3 evaluations x 400 s = 2400 s of work, on two workers.
  ASSERT_TRUE(e.seconds_left(2, 3).has_value());
  EXPECT_DOUBLE_EQ(*e.seconds_left(2, 3), 1200.0);
  EXPECT_DOUBLE_EQ(*e.seconds_left(1, 3), 2400.0);
  EXPECT_DOUBLE_EQ(*e.seconds_left(4, 2), 1200.0);  // two runs left cannot use four workers
  e.evaluated(200);                                 // mean evaluation now 300 s
  EXPECT_DOUBLE_EQ(*e.seconds_left(2, 2), (600 * 2.0 + 2 * 300.0) / 2);
  e.trained(300, 600);
  e.trained(300, 600);
  e.evaluated(300);
  e.evaluated(300);
  EXPECT_DOUBLE_EQ(*e.seconds_left(2, 0), 0.0);  // all done
}

TEST(AblateCli, GridRunsSkipsFinishedAndResumesKilledRuns) {
  const std::string dir = gemkit::test::temp_folder("ablate", "e2e");
  const std::string log = dir + "/console.txt";
  // A 2-block Llama of width 32 with the bundled base's tokenizer; 12 law documents to train on.
  Outcome o = run_gemkit({"model", "init", "--recipe", "recipes/models/tiny_llama.toml", "--tokenizer", "checkpoints/gemkit-base",
                      "--out", dir + "/model", "model.init.hidden_size=32", "model.init.intermediate_size=64",
                      "model.init.num_hidden_layers=2", "model.init.max_position_embeddings=128"},
                     "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  {
    std::ifstream in(kSource + "/data/mini/law/train.jsonl");
    std::ofstream docs(dir + "/law.jsonl");
    std::string line;
    for (int i = 0; i < 12 && std::getline(in, line); ++i) docs << line << "\n";
  }
  o = run_gemkit({"data", "prepare", "--quiet", "--tokenizer", "checkpoints/gemkit-base", "--out", dir + "/law.h5", dir + "/law.jsonl"}, "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  // Plain fine-tuning with a checkpoint every step (the kill below hits step 2), and LoRA with
  // only the final checkpoint (step 3), which the kill does not reach.
  const std::string common = "[model]\npath = \"" + dir + "/model\"\n\n[train]\ndata = [\"" + dir +
                             "/law.h5\"]\nbatch_size = 2\nseq_len = 32\nschedule = \"constant\"\nmax_steps = 3\n";
  std::ofstream(dir + "/ft.toml") << "# plain fine-tuning\n" << common << "checkpoint_every = 1\nkeep_last = 0\n";
  std::ofstream(dir + "/lora.toml") << "# LoRA\n" << common << "mode = \"lora\"\ncheckpoint_every = 3\n";
  const std::string mini = kSource + "/data/mini";
  const std::string out = dir + "/ablation";
  const std::vector<std::string> args = {
      "ablate", dir + "/ft.toml", dir + "/lora.toml", "--grid", "train.lr=1e-3,3e-3", "--seeds", "1",
      "--eval-corpus", mini + "/law/test.jsonl," + mini + "/general/test.jsonl," + mini + "/finance/test.jsonl",
      "--eval-tasks", mini + "/law/tasks/spdx_osi.test.jsonl," + mini + "/general/tasks/novel_id.test.jsonl",
      "--max-items", "8", "--out", out};
  const std::vector<std::string> names = {"ft__train.lr=1e-3__seed0", "ft__train.lr=3e-3__seed0",
                                          "lora__train.lr=1e-3__seed0", "lora__train.lr=3e-3__seed0"};
  const auto run_dir = [&](size_t i) { return out + "/runs/" + names[i]; };

  // 1. Every training process SIGKILLs itself halfway through writing checkpoint 2: the
  //    fine-tuning runs fail after checkpoint 1, the LoRA runs (no checkpoint 2) finish.
  o = run_gemkit(args, "GEMKIT_TEST_KILL_DURING_CHECKPOINT=2", log);
  EXPECT_EQ(o.code, 1) << o.out;
  EXPECT_NE(o.out.find("[1/4] ft__train.lr=1e-3__seed0: training ... failed (exit 137"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("gemkit: error: " + out + ": 2 of 4 runs failed"), std::string::npos) << o.out;
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_FALSE(fs::exists(run_dir(i) + "/DONE")) << names[i];
    EXPECT_TRUE(fs::exists(run_dir(i) + "/step-0000001")) << names[i];
    EXPECT_NE(read_text_file(run_dir(i) + "/log.txt").find("$ gemkit train"), std::string::npos);
  }
  for (size_t i = 2; i < 4; ++i) {
    EXPECT_TRUE(fs::exists(run_dir(i) + "/DONE")) << names[i];
    EXPECT_TRUE(fs::exists(run_dir(i) + "/merged/model.safetensors")) << names[i];  // LoRA: the merged model is evaluated
  }
  EXPECT_TRUE(fs::exists(out + "/report.md"));  // written despite the failures
  const int64_t lora_eval_time = mtime_ns(run_dir(2) + "/eval.json");
  const int64_t base_eval_time = mtime_ns(out + "/base_eval.json");

  // --report-only: a report of the two finished runs; the others are named, nothing is started.
  const int64_t ft_log_time = mtime_ns(run_dir(0) + "/log.txt");
  std::vector<std::string> report_only = args;
  report_only.push_back("--report-only");
  o = run_gemkit(report_only, "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_NE(o.out.find("report of the 2 finished run(s); 2 not finished yet are left out"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("training ..."), std::string::npos) << o.out;
  EXPECT_EQ(mtime_ns(run_dir(0) + "/log.txt"), ft_log_time);
  EXPECT_EQ(mtime_ns(run_dir(2) + "/eval.json"), lora_eval_time);
  EXPECT_EQ(mtime_ns(out + "/base_eval.json"), base_eval_time);
  EXPECT_FALSE(fs::exists(run_dir(0) + "/DONE"));
  const json partial = json::parse(read_text_file(out + "/report.json"));
  ASSERT_EQ(partial["runs"].size(), 2u);
  EXPECT_EQ(partial["runs"][0]["name"], names[2]);
  EXPECT_NE(read_text_file(out + "/report.md").find("2 run(s) not finished yet, left out of this report: " + names[0] +
                                                     ", " + names[1]),
            std::string::npos);

  // 2. Again without the kill: the fine-tuning runs resume from step 1, the LoRA runs are skipped.
  o = run_gemkit(args, "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_NE(o.out.find("[3/4] lora__train.lr=1e-3__seed0: skipped (done)"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("[1/4] ft__train.lr=1e-3__seed0: training ... done ("), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("base model " + dir + "/model: evaluated already"), std::string::npos) << o.out;
  // Grid progress counts the two runs that had work to do, not the skipped ones.
  EXPECT_NE(o.out.find("grid: 1 of 2 runs to do finished in "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("; about "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("grid: 2 of 2 runs to do finished in "), std::string::npos) << o.out;
  EXPECT_EQ(mtime_ns(run_dir(2) + "/eval.json"), lora_eval_time);
  EXPECT_EQ(mtime_ns(out + "/base_eval.json"), base_eval_time);
  for (size_t i = 0; i < 2; ++i) {
    const std::string run_log = read_text_file(run_dir(i) + "/log.txt");
    EXPECT_NE(run_log.find("at step 1"), std::string::npos) << run_log;  // "resumed from .../step-0000001 at step 1"
    EXPECT_NE(run_log.find("done: 3 steps"), std::string::npos) << run_log;
    EXPECT_EQ(read_text_file(run_dir(i) + "/latest").substr(0, 12), "step-0000003");
  }

  // The report: one row per method and grid cell, numbers as the runs' eval.json say.
  const json report = json::parse(read_text_file(out + "/report.json"));
  const json base = json::parse(read_text_file(out + "/base_eval.json"));
  ASSERT_EQ(report["rows"].size(), 4u);
  ASSERT_EQ(report["runs"].size(), 4u);
  const auto ppl = [](const json& eval, const std::string& domain) {
    for (const json& r : eval["results"])
      if (r["kind"] == "perplexity" && r["domain"] == domain) return r["figures"]["perplexity"]["value"].get<double>();
    return double(NAN);
  };
  for (size_t i = 0; i < 4; ++i) {
    const json eval = json::parse(read_text_file(run_dir(i) + "/eval.json"));
    const json& run = report["runs"][i];
    EXPECT_EQ(run["name"], names[i]);
    EXPECT_EQ(run["status"], "done");
    EXPECT_EQ(run["target"], "law");  // the domain of the training shard's documents
    EXPECT_DOUBLE_EQ(run["metrics"]["domain_gain"].get<double>(), (ppl(base, "law") - ppl(eval, "law")) / ppl(base, "law"));
    EXPECT_DOUBLE_EQ(run["metrics"]["general_drift"].get<double>(), ppl(eval, "general") / ppl(base, "general") - 1);
    EXPECT_DOUBLE_EQ(report["rows"][i]["metrics"]["target_ppl"]["mean"].get<double>(), ppl(eval, "law"));
    EXPECT_GT(report["rows"][i]["training"]["tokens_per_s"]["mean"].get<double>(), 0);
    EXPECT_TRUE(fs::exists(run_dir(i) + "/DONE"));
  }
  EXPECT_GT(report["runs"][0]["metrics"]["domain_gain"].get<double>(), 0);  // fine-tuning on law lowers law PPL
  EXPECT_EQ(count(read_text_file(out + "/report.csv"), "\n"), 5u);
  EXPECT_EQ(read_text_file(out + "/tradeoff.svg").rfind("<?xml", 0), 0u);
  EXPECT_NE(read_text_file(out + "/report.md").find("| lora [train.lr=3e-3] | 1 | law |"), std::string::npos);
  // Each run exported to the compact format and measured by gemkit-run.
  for (size_t i = 0; i < 4; ++i) {
    const json deployed = json::parse(read_text_file(run_dir(i) + "/deploy.json"));
    const json done = json::parse(read_text_file(run_dir(i) + "/DONE"));
    EXPECT_EQ(deployed["checkpoint"], done["checkpoint"]) << names[i];
    EXPECT_EQ(deployed["runtime"], "gemkit-run");
    const double file_mb = double(fs::file_size(run_dir(i) + "/deploy/model.gguf")) / 1e6;
    EXPECT_NEAR(deployed["file_mb"].get<double>(), file_mb, 0.01) << names[i];
    EXPECT_GT(deployed["decode_tok_s"].get<double>(), 0);
    EXPECT_GT(deployed["peak_rss_mb"].get<double>(), file_mb);
    EXPECT_DOUBLE_EQ(report["rows"][i]["deployment"]["file_mb"]["mean"].get<double>(), deployed["file_mb"].get<double>());
  }
  EXPECT_NE(read_text_file(out + "/report.md").find("## Exported model"), std::string::npos);

  // 3. Everything finished: nothing is trained or evaluated again.
  const int64_t ft_eval_time = mtime_ns(run_dir(0) + "/eval.json");
  o = run_gemkit(args, "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_EQ(count(o.out, ": skipped (done)"), 4u) << o.out;
  EXPECT_EQ(o.out.find("training ..."), std::string::npos) << o.out;
  EXPECT_EQ(mtime_ns(run_dir(0) + "/eval.json"), ft_eval_time);

  // 4. A run whose measurement is missing is only exported and measured again.
  fs::remove(run_dir(1) + "/deploy.json");
  o = run_gemkit(args, "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_EQ(count(o.out, ": skipped (done)"), 3u) << o.out;
  EXPECT_NE(o.out.find("[2/4] ft__train.lr=3e-3__seed0: exporting ... done"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("[2/4] ft__train.lr=3e-3__seed0: measuring ... done"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("training ..."), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("evaluating ..."), std::string::npos) << o.out;
  EXPECT_TRUE(fs::exists(run_dir(1) + "/deploy.json"));

  // 5. A recipe changed after its runs were trained: those runs fail with what changed (nothing
  //    is skipped as done under other settings, nothing removed); the others are skipped.
  std::ofstream(dir + "/ft.toml") << "# plain fine-tuning\n" << common << "checkpoint_every = 1\nkeep_last = 0\nweight_decay = 0.5\n";
  o = run_gemkit(args, "", log);
  EXPECT_EQ(o.code, 1) << o.out;
  EXPECT_EQ(count(o.out, ": skipped (done)"), 2u) << o.out;
  EXPECT_NE(o.out.find("- ft__train.lr=1e-3__seed0: the run was trained with other settings than " + dir +
                       "/ft.toml gives now (now train.weight_decay = 0.5; was train.weight_decay = 0.1"),
            std::string::npos)
      << o.out;
  EXPECT_EQ(o.out.find("training ..."), std::string::npos) << o.out;
  EXPECT_TRUE(fs::exists(run_dir(0) + "/DONE"));
  EXPECT_EQ(mtime_ns(run_dir(0) + "/eval.json"), ft_eval_time);

  // 6. WiSE-FT at a = 0.5 (the recipe restored): every finished run (plain and LoRA, both dense)
  //    is interpolated with the base and evaluated, nothing trained; the interpolated weights are
  //    removed once evaluated; a second invocation skips them.
  std::ofstream(dir + "/ft.toml") << "# plain fine-tuning\n" << common << "checkpoint_every = 1\nkeep_last = 0\n";
  std::vector<std::string> wise = args;
  wise.insert(wise.end(), {"--wise-ft", "0.5", "--no-deploy"});
  o = run_gemkit(wise, "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_EQ(count(o.out, ": skipped (done)"), 4u) << o.out;
  EXPECT_EQ(count(o.out, ": interpolating ... done"), 4u) << o.out;
  EXPECT_EQ(o.out.find("training ..."), std::string::npos) << o.out;
  const std::string wise_dir = out + "/runs/ft+wise0.5__train.lr=1e-3__seed0";
  EXPECT_TRUE(fs::exists(wise_dir + "/DONE"));
  EXPECT_FALSE(fs::exists(wise_dir + "/model"));
  const json wise_eval = json::parse(read_text_file(wise_dir + "/eval.json"));
  EXPECT_EQ(wise_eval["model"]["path"], wise_dir + "/model");
  const json wise_report = json::parse(read_text_file(out + "/report.json"));
  EXPECT_EQ(wise_report["methods"], json::array({"ft", "ft+wise0.5", "lora", "lora+wise0.5"}));
  ASSERT_EQ(wise_report["rows"].size(), 8u);
  const json& wise_row = wise_report["rows"][2];
  EXPECT_EQ(wise_row["label"], "ft+wise0.5 [train.lr=1e-3]");
  EXPECT_DOUBLE_EQ(wise_row["metrics"]["target_ppl"]["mean"].get<double>(), ppl(wise_eval, "law"));
  EXPECT_TRUE(wise_row["metrics"]["gain_kept"]["mean"].is_number());  // against ft's run of the same cell and seed
  // The trade-off plot draws each recipe's sweep as a curve from the base through a = 0.5 to its run.
  EXPECT_NE(read_text_file(out + "/tradeoff.svg").find("ft: WiSE-FT a = 0 .. 1"), std::string::npos);
  o = run_gemkit(wise, "", log);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_EQ(count(o.out, ": skipped (done)"), 8u) << o.out;
}

TEST(AblateCli, BadArgumentsFailBeforeAnyRun) {
  const std::string dir = gemkit::test::temp_folder("ablate", "errors");
  const std::string log = dir + "/console.txt";
  std::ofstream(dir + "/ft.toml") << "[model]\npath = \"" << dir << "/model\"\n[train]\ndata = [\"" << dir
                                  << "/none.h5\"]\nmax_steps = 1\n";
  const auto fails = [&](const std::vector<std::string>& extra, const std::string& needle) {
    std::vector<std::string> args = {"ablate", dir + "/ft.toml", "--eval-corpus", "data/mini", "--out", dir + "/out"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Outcome o = run_gemkit(args, "", log);
    EXPECT_EQ(o.code, 1) << o.out;
    EXPECT_NE(o.out.find("gemkit: error: "), std::string::npos) << o.out;
    EXPECT_NE(o.out.find(needle), std::string::npos) << "expected '" << needle << "'\n" << o.out;
    EXPECT_FALSE(fs::exists(dir + "/out/runs")) << "nothing may run";
  };
  fails({"--grid", "train.lr"}, "--grid train.lr: expected key=value1,value2");
  fails({"--grid", "train.lrr=1,2", "--target", "law"}, "did you mean train.lr?");
  fails({"--target", "law", "--seeds", "0"}, "--seeds: expected at least 1");
  fails({}, "cannot read the target domain from train.data");
  fails({"--target", "law", "--runtime", dir + "/no-gemkit-run"}, "--runtime " + dir + "/no-gemkit-run: not an executable file");
  fails({"--target", "law", "--report-only"}, dir + "/out/base_eval.json: no evaluation of the base model");
  fails({"--target", "law", "--wise-ft", "1"}, "--wise-ft: each a must lie strictly between 0");
  fails({"--target", "law", "--eval-precision", "fp16"}, "--eval-precision: expected fp32 or bf16");
  std::ofstream(dir + "/any.toml") << "[model]\npath = \"" << dir << "/model\"\n[train]\ndata = [\"" << dir
                                   << "/{domain}.h5\"]\nmax_steps = 1\n";
  const Outcome o = run_gemkit({"ablate", dir + "/any.toml", "--eval-corpus", "data/mini", "--out", dir + "/out"}, "", log);
  EXPECT_NE(o.out.find(dir + "/any.toml: train.data uses {domain}: give the domain with --domain"), std::string::npos) << o.out;
}

// One recipe for every domain: --domain fills {domain} in string values (lists element by element),
// passes the same values to `gemkit train` as overrides, and is the target.
TEST(AblatePlan, DomainFillsThePlaceholders) {
  const std::string dir = gemkit::test::temp_folder("ablate", "domain");
  std::ofstream(dir + "/gem.toml") << "[model]\npath = \"" << dir << "/model\"\n[train]\ndata = [\"" << dir
                                   << "/{domain}/train.h5\", \"" << dir << "/general/train.h5\"]\nvalidation = \"" << dir
                                   << "/{domain}/validation.h5\"\nmax_steps = 1\n[scar]\nenabled = true\nexperts = [\"{domain}\"]\n";
  ablate::AblateOptions a;
  a.recipes = {dir + "/gem.toml"};
  a.domain = "healthcare";
  a.seeds = 1;
  a.out = dir + "/out";
  const ablate::Plan plan = ablate::plan_ablation(a);
  ASSERT_EQ(plan.runs.size(), 1u);
  const ablate::PlannedRun& p = plan.runs[0];
  EXPECT_EQ(p.run.target, "healthcare");
  EXPECT_EQ(p.settings.get_strings("train.data"),
            (std::vector<std::string>{dir + "/healthcare/train.h5", dir + "/general/train.h5"}));
  EXPECT_EQ(p.settings.get_string("train.validation"), dir + "/healthcare/validation.h5");
  EXPECT_EQ(p.settings.get_strings("scar.experts"), (std::vector<std::string>{"healthcare"}));
  for (const std::string& o : {"train.data=" + dir + "/healthcare/train.h5," + dir + "/general/train.h5", std::string("scar.experts=healthcare")})
    EXPECT_NE(std::find(p.overrides.begin(), p.overrides.end(), o), p.overrides.end()) << o;

  // A grid over a list key (the replay share): values separated by ';' when the option has one.
  a.grid = {"train.data_weights=0.99,0.01;0.75,0.25"};
  const ablate::Plan swept = ablate::plan_ablation(a);
  ASSERT_EQ(swept.runs.size(), 2u);
  EXPECT_EQ(swept.runs[0].settings.get_strings("train.data_weights"), (std::vector<std::string>{"0.99", "0.01"}));
  EXPECT_EQ(swept.runs[1].settings.get_strings("train.data_weights"), (std::vector<std::string>{"0.75", "0.25"}));
  EXPECT_EQ(swept.runs[0].run.name, "gem__train.data_weights=0.99_0.01__seed0");
}
