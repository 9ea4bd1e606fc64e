#include "ablate/scheduler.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ablate/grid_estimate.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/process.h"
#include "import/model_registry.h"
#include "report/ablation_report.h"
#include "report/run_metrics.h"
#include "tokenizers/unicode.h"
#include "train/checkpointing.h"
#include "train/metrics_log.h"

namespace gemkit::ablate {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string read_json_text(const std::string& path, json& out) {
  try {
    out = json::parse(read_text_file(path));
    return "";
  } catch (const std::exception& e) {
    return path + ": " + e.what();
  }
}

// A program a run step starts: this binary (`gemkit ...`) or gemkit-run.
struct Program {
  std::string path, name;
};
const Program kSelf{"/proc/self/exe", "gemkit"};

// Runs `program ARGS...` with stderr (and stdout, unless `stdout_file` is given: then that file
// gets it) appended to `log`, after a line naming the command; the exit status (128 + signal
// when killed).
int run_child(const Program& program, const std::vector<std::string>& args, const std::string& log,
              const std::string& stdout_file = "") {
  {
    std::ofstream header(log, std::ios::app);
    header << "$ " << program.name;
    for (const std::string& a : args) header << " " << a;
    if (!stdout_file.empty()) header << " > " << stdout_file;
    header << "\n";
  }
  std::vector<std::string> argv{program.name};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process_to_files(program.path, argv, {log, stdout_file});
}

// The last `n` lines of a log, indented, for the console.
std::string log_tail(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

// What the scheduler knows of a run besides its plan.
struct RunState {
  bool to_do = false;       // not finished when the grid started (no DONE file)
  int64_t steps_left = 0;   // training steps still to do when the grid started
  double step_seconds = 0;  // wall time of the run's last step (training, evaluating, ...)
};

class Scheduler {
 public:
  Scheduler(const AblateOptions& a, Plan& plan) : a_(a), plan_(plan), state_(plan.runs.size()) {}

  // Trains, evaluates and deploys every run not done yet, --jobs at a time, then reports.
  void run() {
    if (!a_.no_deploy) runtime_ = {find_runtime(), "gemkit-run"};
    fs::create_directories(out("runs"));
    std::printf("ablation: %zu method(s) x %zu grid cell(s) x %lld seed(s) = %zu runs -> %s\n",
                plan_.report.methods.size(), plan_.cells, (long long)a_.seeds, plan_.runs.size(), a_.out.c_str());
    evaluate_base();
    for (size_t i = 0; i < plan_.runs.size(); ++i) {
      const PlannedRun& p = plan_.runs[i];
      RunState& st = state_[i];
      st.to_do = !fs::exists(p.dir + "/DONE");
      if (!p.wise_of.empty()) continue;  // done by its source run's worker, in no estimate
      to_do_ += st.to_do;
      if (!st.to_do) continue;
      const std::vector<int64_t> saved = list_checkpoints(p.dir);
      st.steps_left = std::max<int64_t>(max_steps(p) - (saved.empty() ? 0 : saved.back()), 0);
      estimate_.plan(st.steps_left, 1);
    }
    start_ = std::chrono::steady_clock::now();
    std::atomic<size_t> next{0};
    const auto worker = [&] {
      for (size_t i = next++; i < plan_.runs.size(); i = next++) {
        if (!plan_.runs[i].wise_of.empty()) continue;
        execute(i);
        if (state_[i].to_do) grid_progress();
        for (size_t j = 0; j < plan_.runs.size(); ++j)
          if (plan_.runs[j].wise_of == plan_.runs[i].dir) execute_wise(j, i);
      }
    };
    std::vector<std::thread> threads;
    for (int64_t t = 1; t < std::min<int64_t>(a_.jobs, int64_t(plan_.runs.size())); ++t) threads.emplace_back(worker);
    worker();
    for (std::thread& t : threads) t.join();
    report();
  }

  // --report-only: the runs finished and evaluated with these settings; the others are left out of
  // the report and named in it. Nothing is written but the report.
  void report_finished_runs() {
    const std::string base = out("base_eval.json").string();
    if (!evaluated_already(base, plan_.base_model))
      fail(base, "no evaluation of the base model " + plan_.base_model +
                     " with these evaluation settings yet: run the grid without --report-only first");
    std::vector<PlannedRun> finished;
    for (PlannedRun& p : plan_.runs) {
      std::string why;
      const std::string model = fs::exists(p.dir + "/DONE") ? evaluation_model(p, why) : "";
      if (!model.empty() && evaluated_already(p.dir + "/eval.json", model)) {
        finish(p, "");
        finished.push_back(std::move(p));
      } else {
        plan_.report.unfinished.push_back(p.run.name);
      }
    }
    std::printf("report of the %zu finished run(s); %zu not finished yet are left out\n", finished.size(),
                plan_.report.unfinished.size());
    plan_.runs = std::move(finished);
    report();
  }

 private:
  const AblateOptions& a_;
  Plan& plan_;
  std::vector<RunState> state_;  // per run of plan_.runs (run() only)
  Program runtime_;
  std::mutex print_;
  size_t to_do_ = 0, done_ = 0;  // runs to do when the grid started, and finished since
  std::chrono::steady_clock::time_point start_;
  GridEstimate estimate_;  // guarded by print_

  // After each run that had work to do: how many are left and about how long they will take,
  // from the training steps and evaluations still to do at the rates measured so far.
  void grid_progress() {
    std::lock_guard<std::mutex> lock(print_);
    ++done_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::printf("grid: %zu of %zu runs to do finished in %s", done_, to_do_, duration_text(elapsed).c_str());
    if (done_ < to_do_) {
      const auto left = estimate_.seconds_left(a_.jobs, int64_t(to_do_ - done_));
      if (left) std::printf("; about %s for the %zu left", duration_text(*left).c_str(), to_do_ - done_);
      else std::printf("; %zu left (time left known once a run has trained and one has been evaluated)", to_do_ - done_);
    }
    std::printf("\n");
    std::fflush(stdout);
  }

  fs::path out(const std::string& rel) const { return fs::path(a_.out) / rel; }

  std::vector<std::string> eval_args(const std::string& model, const std::string& report) const {
    std::vector<std::string> args{"eval", "--model", model, "--corpus", a_.corpus, "--split", a_.split,
                                  "--max-items", std::to_string(a_.max_items), "--out", report,
                                  "eval.max_documents=" + std::to_string(a_.max_documents),
                                  "eval.max_tokens=" + std::to_string(a_.max_tokens),
                                  "eval.precision=" + a_.eval_precision};
    if (!a_.tasks.empty()) args.insert(args.end(), {"--tasks", a_.tasks});
    return args;
  }

  // Whether `report_path` is a report of `model` with this invocation's evaluation settings
  // (a models:NAME reference compares as the cached folder `gemkit eval` records).
  bool evaluated_already(const std::string& report_path, const std::string& model) const {
    json r;
    if (!fs::exists(report_path) || !read_json_text(report_path, r).empty() || !r.is_object()) return false;
    const json s = r.value("settings", json::object());
    const std::string path = r.value("model", json::object()).value("path", "");
    return (path == model || path == resolve_model_path(model, default_cache_dir())) && s.value("corpus", "") == a_.corpus &&
           s.value("tasks", "") == a_.tasks && s.value("split", "") == a_.split &&
           s.value("max_items", int64_t(-1)) == a_.max_items &&
           s.value("max_documents", int64_t(-1)) == a_.max_documents &&
           s.value("max_tokens", int64_t(0)) == a_.max_tokens && s.value("precision", "fp32") == a_.eval_precision;
  }

  void evaluate_base() {
    const std::string report = out("base_eval.json").string(), log = out("base_eval.log").string();
    if (evaluated_already(report, plan_.base_model)) {
      std::printf("base model %s: evaluated already (%s)\n", plan_.base_model.c_str(), report.c_str());
      return;
    }
    std::printf("base model %s: evaluating ...", plan_.base_model.c_str());
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    const int code = run_child(kSelf, eval_args(plan_.base_model, report), log);
    if (code != 0) {
      std::printf(" failed\n%s", log_tail(log, 8).c_str());
      fail(plan_.base_model, "evaluating the base model failed (exit " + std::to_string(code) + "; log: " + log + ")");
    }
    std::printf(" done (%.0f s)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // One step of run i with a progress line: "[3/12] name: training ... done (212 s)".
  bool step(size_t i, const char* what, const std::vector<std::string>& args, std::string& error,
            const Program& program = kSelf, const std::string& stdout_file = "") {
    PlannedRun& p = plan_.runs[i];
    const std::string prefix =
        "[" + std::to_string(i + 1) + "/" + std::to_string(plan_.runs.size()) + "] " + p.run.name + ": " + what + " ...";
    const bool serial = a_.jobs == 1;
    if (serial) {
      std::lock_guard<std::mutex> lock(print_);
      std::printf("%s", prefix.c_str());
      std::fflush(stdout);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::string log = p.dir + "/log.txt";
    const int code = run_child(program, args, log, stdout_file);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state_[i].step_seconds = s;
    char tail[128];
    if (code == 0) std::snprintf(tail, sizeof tail, " done (%.0f s)\n", s);
    else std::snprintf(tail, sizeof tail, " failed (exit %d after %.0f s; log: %s)\n", code, s, log.c_str());
    {
      std::lock_guard<std::mutex> lock(print_);
      std::printf("%s%s%s", serial ? "" : prefix.c_str(), tail, code ? log_tail(log, 6).c_str() : "");
      std::fflush(stdout);
    }
    if (code != 0) error = std::string(what) + " failed (exit " + std::to_string(code) + "; log: " + log + ")";
    return code == 0;
  }

  void execute(size_t i) {
    PlannedRun& p = plan_.runs[i];
    RunState& st = state_[i];
    const std::string done = p.dir + "/DONE", report = p.dir + "/eval.json";
    fs::create_directories(p.dir);
    std::string error;
    if (!same_settings(p, error)) {
      std::lock_guard<std::mutex> lock(print_);
      std::printf("[%zu/%zu] %s: not run: %s\n", i + 1, plan_.runs.size(), p.run.name.c_str(), error.c_str());
      std::fflush(stdout);
      return finish(p, error);
    }
    bool trained = false, evaluated = false;
    if (fs::exists(done)) {
      std::string why;
      const std::string model = evaluation_model(p, why);
      trained = why.empty();
      evaluated = trained && evaluated_already(report, model);  // else evaluation settings changed
      if (evaluated && (a_.no_deploy || deployed_already(p, model))) {
        std::lock_guard<std::mutex> lock(print_);
        std::printf("[%zu/%zu] %s: skipped (done)\n", i + 1, plan_.runs.size(), p.run.name.c_str());
        std::fflush(stdout);
        finish(p, "");
        return;
      }
      fs::remove(done);
    }
    std::vector<std::string> train{"train", p.recipe};
    train.insert(train.end(), p.overrides.begin(), p.overrides.end());
    train.insert(train.end(), {"--out", p.dir, "--resume"});
    if (!trained) {
      if (!step(i, "training", train, error)) return finish(p, error);
      std::lock_guard<std::mutex> lock(print_);
      if (st.steps_left > 0) estimate_.trained(st.steps_left, st.step_seconds);  // not a finished run's resume check
    }
    const std::string model = evaluation_model(p, error);
    if (!error.empty()) return finish(p, error);
    if (!evaluated) {
      if (!step(i, "evaluating", eval_args(model, report), error)) return finish(p, error);
      std::lock_guard<std::mutex> lock(print_);
      estimate_.evaluated(st.step_seconds);
    }
    if (!a_.no_deploy && !deployed_already(p, model) && !deploy(i, model, error)) return finish(p, error);
    write_text_file_atomic(done, json({{"checkpoint", model}, {"eval", report}}).dump() + "\n");
    finish(p, "");
  }

  // WiSE-FT run j of the finished run i: `gemkit merge wise` of i's model with the base into
  // RUN/model, evaluated, then RUN/model removed (only eval.json is kept; DONE names the
  // interpolated checkpoint, so a retrained source run is interpolated again).
  void execute_wise(size_t j, size_t i) {
    PlannedRun& w = plan_.runs[j];
    const PlannedRun& src = plan_.runs[i];
    if (!src.run.ok) return finish(w, "its run " + src.run.name + " did not finish");
    std::string error;
    const std::string source = evaluation_model(src, error), model = w.dir + "/model", report = w.dir + "/eval.json";
    if (!error.empty()) return finish(w, error);
    json done;
    if (read_json_text(w.dir + "/DONE", done).empty() && done.value("source", "") == source &&
        evaluated_already(report, model)) {
      std::lock_guard<std::mutex> lock(print_);
      std::printf("[%zu/%zu] %s: skipped (done)\n", j + 1, plan_.runs.size(), w.run.name.c_str());
      std::fflush(stdout);
      return finish(w, "");
    }
    fs::create_directories(w.dir);
    fs::remove(w.dir + "/DONE");
    char alpha[32];
    std::snprintf(alpha, sizeof alpha, "%g", w.wise_alpha);
    if (!step(j, "interpolating", {"merge", "wise", "--base", plan_.base_model, "--model", source, "--alpha", alpha,
                                   "--out", model, "--force"}, error))
      return finish(w, error);
    if (!step(j, "evaluating", eval_args(model, report), error)) return finish(w, error);
    fs::remove_all(model);  // 4 bytes a weight: re-made from the source run if ever needed
    write_text_file_atomic(w.dir + "/DONE", json({{"checkpoint", model}, {"source", source}, {"eval", report}}).dump() + "\n");
    finish(w, "");
  }

  // Whether the run folder, if it was trained before, was trained with the settings the recipe
  // and overrides give now (its resolved_recipe.toml, resolved again so that keys added to
  // gemkit since then take their defaults). A changed recipe would otherwise be skipped as done
  // or resumed under other settings; nothing is removed: the error says what changed.
  bool same_settings(const PlannedRun& p, std::string& error) const {
    const std::string path = p.dir + "/resolved_recipe.toml";
    if (!fs::exists(path)) return true;
    Recipe old;
    try {
      old = Recipe::load(path);
      old.resolve();
    } catch (const Error& e) {
      error = path + ": cannot be read as a recipe (" + e.what() + "); remove " + p.dir + " to train the run again";
      return false;
    }
    const std::string changes = settings_changes(old, p.settings);
    if (changes.empty()) return true;
    error = "the run was trained with other settings than " + p.recipe + " gives now (" + changes +
            "); remove " + p.dir + " to train it again, or restore the recipe";
    return false;
  }

  // gemkit-run: --runtime, else beside this binary, else in the build tree (BUILD/cli/gemkit,
  // BUILD/runtime/gemkit-run).
  std::string find_runtime() const {
    if (!a_.runtime.empty()) {
      if (::access(a_.runtime.c_str(), X_OK) != 0) fail("--runtime " + a_.runtime, "not an executable file");
      return a_.runtime;
    }
    const fs::path self = fs::read_symlink("/proc/self/exe").parent_path();
    for (const fs::path& candidate : {self / "gemkit-run", self.parent_path() / "runtime" / "gemkit-run"})
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    fail("gemkit ablate", "gemkit-run is not beside this binary (" + self.string() + ") nor in " +
                              (self.parent_path() / "runtime").string() +
                              ": give its path with --runtime, or --no-deploy to skip measuring the exported models");
  }

  // Whether RUN/deploy.json measures the export of `model`.
  bool deployed_already(const PlannedRun& p, const std::string& model) const {
    json d;
    return read_json_text(p.dir + "/deploy.json", d).empty() && d.is_object() && d.value("checkpoint", "") == model;
  }

  // The first document of the target domain's evaluation text (a suite or domain folder's
  // SPLIT.jsonl, or a listed file under a folder named after the domain), cut to about 128 tokens:
  // the bench prompt, so routing decides on real text. Empty when there is none (fixed ids).
  std::string bench_prompt(const std::string& target) const {
    std::vector<fs::path> candidates{fs::path(a_.corpus) / target / (a_.split + ".jsonl"), fs::path(a_.corpus) / (a_.split + ".jsonl")};
    std::stringstream list(a_.corpus);
    for (std::string f; std::getline(list, f, ',');)
      if (fs::path(f).parent_path().filename() == target) candidates.push_back(f);
    for (const fs::path& c : candidates) {
      std::ifstream in(c);
      std::string line;
      if (!in || !std::getline(in, line)) continue;
      try {
        const json doc = json::parse(line);
        if (!doc.contains("text") || !doc.at("text").is_string()) continue;
        if (doc.contains("domain") && doc.at("domain").is_string() && doc.at("domain") != target) continue;
        const std::string text = doc.at("text").get<std::string>();
        size_t end = 0;  // whole UTF-8 characters, at most 600 bytes
        while (end < text.size() && end + unicode::utf8_len(static_cast<unsigned char>(text[end])) <= 600)
          end += unicode::utf8_len(static_cast<unsigned char>(text[end]));
        return text.substr(0, end);
      } catch (const json::exception&) {
      }
    }
    return "";
  }

  // Exports the run's model to the compact format (RUN/deploy/model.gguf) and measures it with
  // gemkit-run --bench into RUN/deploy.json (+ "checkpoint": the model measured).
  bool deploy(size_t i, const std::string& model, std::string& error) {
    const PlannedRun& p = plan_.runs[i];
    const std::string file = p.dir + "/deploy/model.gguf", bench = p.dir + "/deploy/bench.json";
    fs::create_directories(p.dir + "/deploy");
    if (!step(i, "exporting", {"export", "compact", model, "--out", file, "--quant", p.qat ? "recipe" : "hybrid", "--force"}, error))
      return false;
    std::vector<std::string> args{"-m", file, "--bench", "-t", "1", "--reps", "3", "--prompt-tokens", "128", "--gen-tokens", "64"};
    if (const std::string prompt = bench_prompt(p.run.target); !prompt.empty()) args.insert(args.end(), {"-p", prompt});
    if (!step(i, "measuring", args, error, runtime_, bench)) return false;
    json figures;
    if (const std::string e = read_json_text(bench, figures); !e.empty() || !figures.is_object()) {
      error = "gemkit-run --bench wrote no JSON object: " + (e.empty() ? bench : e);
      return false;
    }
    figures["checkpoint"] = model;
    write_text_file_atomic(p.dir + "/deploy.json", figures.dump(2) + "\n");
    return true;
  }

  // The adapted model to evaluate: RUN/model for WiSE-FT, RUN/merged for LoRA, else
  // RUN/<contents of RUN/latest>.
  std::string evaluation_model(const PlannedRun& p, std::string& error) const {
    if (!p.wise_of.empty()) return p.dir + "/model";
    if (p.lora) return p.dir + "/merged";
    const std::string latest = p.dir + "/latest";
    if (!fs::exists(latest)) {
      error = "no checkpoint: " + latest + " is missing";
      return "";
    }
    std::string name = read_text_file(latest);
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    return p.dir + "/" + name;
  }

  // Collects the run's outputs for the report.
  void finish(PlannedRun& p, const std::string& error) {
    p.run.error = error;
    p.run.ok = error.empty();
    if (!p.run.ok) return;
    if (const std::string e = read_json_text(p.dir + "/eval.json", p.run.eval); !e.empty()) {
      p.run.ok = false;
      p.run.error = e;
      return;
    }
    const std::string metrics = p.dir + "/metrics.jsonl";
    if (fs::exists(metrics)) p.run.training = eval::training_figures(eval::read_run_metrics(metrics), p.run.target);
    for (const auto& [k, v] : eval::evaluation_routing(p.run.eval, p.run.target)) p.run.training[k] = v;
    json deployed;
    if (!a_.no_deploy && read_json_text(p.dir + "/deploy.json", deployed).empty())
      p.run.deployment = eval::deployment_figures(deployed);
  }

  void report() {
    json base;
    if (const std::string e = read_json_text(out("base_eval.json").string(), base); !e.empty()) fail("base model", e);
    std::vector<eval::AblationRun> runs;
    std::vector<std::string> failed;
    for (const PlannedRun& p : plan_.runs) {
      runs.push_back(p.run);
      if (!p.run.ok) failed.push_back(p.run.name);
    }
    const eval::AblationReport r = eval::ablation_report(plan_.report, base, runs);
    eval::write_ablation_report(r, a_.out);
    std::printf("\n%s\nwrote %s/report.md, report.csv, report.json", r.markdown.c_str(), a_.out.c_str());
    for (const auto& [file, svg] : r.plots) std::printf(", %s", file.c_str());
    std::printf("\n");
    if (!failed.empty()) {
      std::string names;
      for (const std::string& n : failed) names += (names.empty() ? "" : ", ") + n;
      fail(a_.out, std::to_string(failed.size()) + " of " + std::to_string(plan_.runs.size()) + " runs failed: " + names +
                       " (logs: " + a_.out + "/runs/<run>/log.txt)");
    }
  }
};

}  // namespace

void run_ablation(const AblateOptions& options) {
  Plan plan = plan_ablation(options);
  Scheduler scheduler(options, plan);
  if (options.report_only) return scheduler.report_finished_runs();
  scheduler.run();
}

}  // namespace gemkit::ablate
