// gemkit ablate RECIPE [RECIPE ...] [--grid key=v1,v2 ...] [--seeds N] --eval-corpus DIR
//   [--eval-tasks DIR] [--split S] [--max-items N] [--max-documents N] [--target DOMAIN] --out DIR [--jobs N]:
// trains every recipe (a method: its file stem) on every cell of the override grid with seeds
// 0..N-1, each run in OUT/runs/<method>[__key=value...]__seed<s> by `gemkit train ... --resume`
// in a child process of this binary, evaluates each final checkpoint and the recipes' base model
// with `gemkit eval`, exports it to the compact format and measures it with `gemkit-run --bench`
// (RUN/deploy/model.gguf, RUN/deploy.json; --no-deploy skips this), and writes the report
// (report/ablation_report.h). A run whose folder holds DONE is skipped; an interrupted one continues
// from its last checkpoint; a failing one is reported (RUN/log.txt) and the others go on.
// --report-only writes the report of the runs finished so far and starts nothing (a look at a grid
// that is still running, possibly in another process).
#include <fcntl.h>
#include <unistd.h>
#include <spawn.h>
#include <algorithm>
#include <sys/wait.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/token_shards.h"
#include "tokenizers/unicode.h"
#include "eval/grid_estimate.h"
#include "report/ablation_report.h"
#include "report/run_metrics.h"
#include "train/checkpointing.h"
#include "train/metrics_log.h"
#include "train/recipe.h"

extern char** environ;

namespace gemkit::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct AblateArgs {
  std::vector<std::string> recipes, grid;
  int64_t seeds = 3, max_items = 0, max_documents = 0, jobs = 1;
  std::string corpus, tasks, split = "test", target, out;
  bool no_deploy = false;
  bool report_only = false;  // write the report of the finished runs; train, evaluate, export nothing
  std::string runtime;  // gemkit-run; default: beside this binary or in the build tree's runtime/
};

struct PlannedRun {
  eval::AblationRun run;
  std::string recipe, dir;
  std::vector<std::string> overrides;  // grid cell, seed (and the LoRA merge)
  bool lora = false;                   // evaluate RUN/merged rather than the latest checkpoint
  bool qat = false;                    // export with the recipe's QAT policy (else hybrid)
  std::set<std::string> settings;      // the resolved recipe with the run's overrides (recipe_settings)
  bool to_do = false;                  // not finished when the grid started (no DONE file)
  int64_t steps_left = 0;              // training steps still to do when the grid started
  double step_seconds = 0;             // wall time of the run's last step (training, evaluating, ...)
};

std::string read_json_text(const std::string& path, json& out) {
  try {
    out = json::parse(read_text_file(path));
    return "";
  } catch (const std::exception& e) {
    return path + ": " + e.what();
  }
}

// A resolved recipe as "section.key = value" lines (comments dropped), for comparing the
// settings of a run with those it was trained with.
std::set<std::string> recipe_settings(const Recipe& r) {
  std::set<std::string> out;
  std::stringstream toml(r.to_toml());
  std::string section;
  for (std::string line; std::getline(toml, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') section = line.substr(1, line.find(']') - 1) + ".";
    else out.insert(section + line.substr(0, line.find("  # ")));
  }
  return out;
}

// A value as part of a folder name: path separators and odd characters become '_'.
std::string name_part(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || std::string("=.-+_").find(c) != std::string::npos) ? c : '_';
  return out;
}

// A program a run step starts: this binary (`gemkit ...`) or gemkit-run.
struct Program {
  std::string path, name;
};
const Program kSelf{"/proc/self/exe", "gemkit"};

// Runs `program ARGS...` with stderr (and stdout, unless `stdout_file` is given: then that file
// gets it) appended to `log`; the exit status (128 + signal when killed).
int run_child(const Program& program, const std::vector<std::string>& args, const std::string& log,
              const std::string& stdout_file = "") {
  {
    std::ofstream header(log, std::ios::app);
    header << "$ " << program.name;
    for (const std::string& a : args) header << " " << a;
    if (!stdout_file.empty()) header << " > " << stdout_file;
    header << "\n";
  }
  std::vector<std::string> argv_strings{program.name};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (stdout_file.empty()) posix_spawn_file_actions_adddup2(&actions, 2, 1);
  else posix_spawn_file_actions_addopen(&actions, 1, stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, program.path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) fail(program.path, std::string("cannot start a child process: ") + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail("gemkit ablate", "waitpid failed");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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

class Ablation {
 public:
  explicit Ablation(const AblateArgs& a) : a_(a) {}

  void run() {
    plan();
    if (a_.report_only) return report_finished_runs();
    evaluate_base();
    for (PlannedRun& p : runs_) {
      p.to_do = !fs::exists(p.dir + "/DONE");
      to_do_ += p.to_do;
      if (!p.to_do) continue;
      const std::vector<int64_t> saved = list_checkpoints(p.dir);
      p.steps_left = std::max<int64_t>(max_steps(p) - (saved.empty() ? 0 : saved.back()), 0);
      estimate_.plan(p.steps_left, 1);
    }
    start_ = std::chrono::steady_clock::now();
    std::atomic<size_t> next{0};
    const auto worker = [&] {
      for (size_t i = next++; i < runs_.size(); i = next++) {
        execute(i);
        if (runs_[i].to_do) grid_progress();
      }
    };
    std::vector<std::thread> threads;
    for (int64_t t = 1; t < std::min<int64_t>(a_.jobs, int64_t(runs_.size())); ++t) threads.emplace_back(worker);
    worker();
    for (std::thread& t : threads) t.join();
    report();
  }

 private:
  const AblateArgs& a_;
  eval::AblationPlan plan_;
  std::vector<PlannedRun> runs_;
  std::string base_model_;
  Program runtime_;
  std::mutex print_;
  size_t to_do_ = 0, done_ = 0;  // runs to do when the grid started, and finished since
  std::chrono::steady_clock::time_point start_;
  eval::GridEstimate estimate_;  // guarded by print_

  // train.max_steps of a run's resolved settings (0 when absent).
  static int64_t max_steps(const PlannedRun& p) {
    const std::string key = "train.max_steps = ";
    for (const std::string& s : p.settings)
      if (s.rfind(key, 0) == 0) return std::strtoll(s.c_str() + key.size(), nullptr, 10);
    return 0;
  }

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

  // Recipes, grid and seeds into runs; every recipe and override is checked before anything runs.
  void plan() {
    if (a_.seeds < 1) fail("--seeds", "expected at least 1");
    if (a_.jobs < 1) fail("--jobs", "expected at least 1");
    for (const std::string& g : a_.grid) {
      const size_t eq = g.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == g.size())
        fail("--grid " + g, "expected key=value1,value2,...");
      const std::string key = g.substr(0, eq);
      if (key == "train.seed") fail("--grid " + g, "train.seed is set by --seeds (0..N-1)");
      for (const auto& [k, v] : plan_.grid)
        if (k == key) fail("--grid " + g, "the key " + key + " is given twice");
      std::vector<std::string> values;
      std::stringstream ss(g.substr(eq + 1));
      for (std::string v; std::getline(ss, v, ',');)
        if (!v.empty()) values.push_back(v);
      if (values.empty()) fail("--grid " + g, "expected at least one value after '='");
      plan_.grid.emplace_back(key, values);
    }
    const std::vector<eval::GridCell> cells = eval::grid_cells(plan_.grid);
    for (const std::string& recipe : a_.recipes) {
      const std::string method = fs::path(recipe).stem().string();
      for (const std::string& m : plan_.methods)
        if (m == method) fail(recipe, "two recipes named " + method + ": the file stem names the method");
      plan_.methods.push_back(method);
      std::string target = a_.target;
      for (const auto& cell : cells) {
        Recipe r = Recipe::load(recipe);
        std::vector<std::string> overrides;
        for (const auto& [k, v] : cell) overrides.push_back(k + "=" + v);
        for (const std::string& o : overrides) r.apply_override(o, "--grid");
        r.resolve();
        if (!r.has("train.data")) fail(recipe, "train.data: not set (token shards to train on)");
        if (!r.has("model.path"))
          fail(recipe, "model.path: not set; ablate compares methods that adapt one base model (model.path)");
        if (base_model_.empty()) base_model_ = r.get_string("model.path");
        if (r.get_string("model.path") != base_model_)
          fail(recipe, "model.path is " + r.get_string("model.path") + ", the first recipe's is " + base_model_ +
                           ": every method must adapt the same base model");
        if (target.empty()) target = shard_domain(recipe, r.get_strings("train.data").front());
        const bool lora = r.get_string("train.mode") == "lora";
        const bool qat = r.has("quant.qat") && r.get_bool("quant.qat");
        // LoRA checkpoints hold the unchanged base; the merged folder is the adapted model.
        if (lora) {
          overrides.push_back("train.lora_merge_on_save=true");
          r.apply_override(overrides.back(), "ablate");
        }
        for (int64_t s = 0; s < a_.seeds; ++s) {
          PlannedRun p;
          p.recipe = recipe;
          p.lora = lora;
          p.qat = qat;
          p.run.method = method;
          p.run.cell = cell;
          p.run.seed = s;
          p.run.target = target;
          p.run.name = method;
          for (const auto& [k, v] : cell) p.run.name += "__" + name_part(k) + "=" + name_part(v);
          p.run.name += "__seed" + std::to_string(s);
          p.dir = out("runs/" + p.run.name).string();
          p.overrides = overrides;
          p.overrides.push_back("train.seed=" + std::to_string(s));
          Recipe seeded = r;  // what `gemkit train` will resolve for this run
          seeded.apply_override(p.overrides.back(), "--seeds");
          p.settings = recipe_settings(seeded);
          runs_.push_back(std::move(p));
        }
      }
    }
    // Seed-major order: every method's seed 0 first, so a long grid stopped early (or a report
    // made with a smaller --seeds) already compares all methods.
    std::stable_sort(runs_.begin(), runs_.end(),
                     [](const PlannedRun& a, const PlannedRun& b) { return a.run.seed < b.run.seed; });
    plan_.seeds = a_.seeds;
    plan_.settings = {{"recipes", a_.recipes},        {"base_model", base_model_},
                      {"eval_corpus", a_.corpus},     {"eval_tasks", a_.tasks},
                      {"split", a_.split},            {"max_items", a_.max_items},
                      {"max_documents", a_.max_documents}, {"target", a_.target}};
    if (a_.report_only) return;  // creates and starts nothing
    if (!a_.no_deploy) runtime_ = {find_runtime(), "gemkit-run"};
    fs::create_directories(out("runs"));
    std::printf("ablation: %zu method(s) x %zu grid cell(s) x %lld seed(s) = %zu runs -> %s\n", plan_.methods.size(),
                cells.size(), (long long)a_.seeds, runs_.size(), a_.out.c_str());
  }

  // The one domain of the documents of a recipe's first training shard.
  std::string shard_domain(const std::string& recipe, const std::string& shard) const {
    std::set<std::string> domains;
    try {
      const TokenShard s(shard);
      for (int64_t d = 0; d < s.n_docs(); ++d) domains.insert(s.info().domain_names.at(size_t(s.doc_domain(d))));
    } catch (const Error& e) {
      fail(recipe, std::string("cannot read the target domain from train.data (") + e.what() + "); give --target");
    }
    if (domains.size() != 1)
      fail(recipe, "the documents of train.data " + shard + " belong to " + std::to_string(domains.size()) +
                       " domains, so the target domain is unclear; give --target");
    return *domains.begin();
  }

  std::vector<std::string> eval_args(const std::string& model, const std::string& report) const {
    std::vector<std::string> args{"eval", "--model", model, "--corpus", a_.corpus, "--split", a_.split,
                                  "--max-items", std::to_string(a_.max_items), "--out", report,
                                  "eval.max_documents=" + std::to_string(a_.max_documents)};
    if (!a_.tasks.empty()) args.insert(args.end(), {"--tasks", a_.tasks});
    return args;
  }

  // Whether `report_path` is a report of `model` with this invocation's evaluation settings.
  bool evaluated_already(const std::string& report_path, const std::string& model) const {
    json r;
    if (!fs::exists(report_path) || !read_json_text(report_path, r).empty() || !r.is_object()) return false;
    const json s = r.value("settings", json::object());
    return r.value("model", json::object()).value("path", "") == model && s.value("corpus", "") == a_.corpus &&
           s.value("tasks", "") == a_.tasks && s.value("split", "") == a_.split &&
           s.value("max_items", int64_t(-1)) == a_.max_items &&
           s.value("max_documents", int64_t(-1)) == a_.max_documents;
  }

  void evaluate_base() {
    const std::string report = out("base_eval.json").string(), log = out("base_eval.log").string();
    if (evaluated_already(report, base_model_)) {
      std::printf("base model %s: evaluated already (%s)\n", base_model_.c_str(), report.c_str());
      return;
    }
    std::printf("base model %s: evaluating ...", base_model_.c_str());
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    const int code = run_child(kSelf, eval_args(base_model_, report), log);
    if (code != 0) {
      std::printf(" failed\n%s", log_tail(log, 8).c_str());
      fail(base_model_, "evaluating the base model failed (exit " + std::to_string(code) + "; log: " + log + ")");
    }
    std::printf(" done (%.0f s)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // One step of run i with a progress line: "[3/12] name: training ... done (212 s)".
  bool step(size_t i, const char* what, const std::vector<std::string>& args, std::string& error,
            const Program& program = kSelf, const std::string& stdout_file = "") {
    PlannedRun& p = runs_[i];
    const std::string prefix = "[" + std::to_string(i + 1) + "/" + std::to_string(runs_.size()) + "] " + p.run.name + ": " + what + " ...";
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
    p.step_seconds = s;
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
    PlannedRun& p = runs_[i];
    const std::string done = p.dir + "/DONE", report = p.dir + "/eval.json";
    fs::create_directories(p.dir);
    std::string error;
    if (!same_settings(p, error)) {
      std::lock_guard<std::mutex> lock(print_);
      std::printf("[%zu/%zu] %s: not run: %s\n", i + 1, runs_.size(), p.run.name.c_str(), error.c_str());
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
        std::printf("[%zu/%zu] %s: skipped (done)\n", i + 1, runs_.size(), p.run.name.c_str());
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
      if (p.steps_left > 0) estimate_.trained(p.steps_left, p.step_seconds);  // not a finished run's resume check
    }
    const std::string model = evaluation_model(p, error);
    if (!error.empty()) return finish(p, error);
    if (!evaluated) {
      if (!step(i, "evaluating", eval_args(model, report), error)) return finish(p, error);
      std::lock_guard<std::mutex> lock(print_);
      estimate_.evaluated(p.step_seconds);
    }
    if (!a_.no_deploy && !deployed_already(p, model) && !deploy(i, model, error)) return finish(p, error);
    write_text_file_atomic(done, json({{"checkpoint", model}, {"eval", report}}).dump() + "\n");
    finish(p, "");
  }

  // Whether the run folder, if it was trained before, was trained with the settings the recipe
  // and overrides give now (its resolved_recipe.toml, resolved again so that keys added to
  // gemkit since then take their defaults). A changed recipe would otherwise be skipped as done
  // or resumed under other settings; nothing is removed: the error says what changed.
  bool same_settings(const PlannedRun& p, std::string& error) const {
    const std::string path = p.dir + "/resolved_recipe.toml";
    if (!fs::exists(path)) return true;
    std::set<std::string> before;
    try {
      Recipe old = Recipe::load(path);
      old.resolve();
      before = recipe_settings(old);
    } catch (const Error& e) {
      error = path + ": cannot be read as a recipe (" + e.what() + "); remove " + p.dir + " to train the run again";
      return false;
    }
    const std::set<std::string>& now = p.settings;
    if (before == now) return true;
    std::string changes;
    int shown = 0;
    for (const std::string& s : now)
      if (!before.count(s) && shown++ < 4) changes += (changes.empty() ? "" : "; ") + ("now " + s);
    for (const std::string& s : before)
      if (!now.count(s) && shown++ < 8) changes += (changes.empty() ? "" : "; ") + ("was " + s);
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
    const PlannedRun& p = runs_[i];
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

  // The adapted model to evaluate: RUN/merged for LoRA, else RUN/<contents of RUN/latest>.
  std::string evaluation_model(const PlannedRun& p, std::string& error) const {
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

  // --report-only: the runs finished and evaluated with these settings; the others are left out of
  // the report and named in it. Nothing is written but the report.
  void report_finished_runs() {
    const std::string base = out("base_eval.json").string();
    if (!evaluated_already(base, base_model_))
      fail(base, "no evaluation of the base model " + base_model_ +
                     " with these evaluation settings yet: run the grid without --report-only first");
    std::vector<PlannedRun> finished;
    for (PlannedRun& p : runs_) {
      std::string why;
      const std::string model = fs::exists(p.dir + "/DONE") ? evaluation_model(p, why) : "";
      if (!model.empty() && evaluated_already(p.dir + "/eval.json", model)) {
        finish(p, "");
        finished.push_back(std::move(p));
      } else {
        plan_.unfinished.push_back(p.run.name);
      }
    }
    std::printf("report of the %zu finished run(s); %zu not finished yet are left out\n", finished.size(),
                plan_.unfinished.size());
    runs_ = std::move(finished);
    report();
  }

  void report() {
    json base;
    if (const std::string e = read_json_text(out("base_eval.json").string(), base); !e.empty()) fail("base model", e);
    std::vector<eval::AblationRun> runs;
    std::vector<std::string> failed;
    for (const PlannedRun& p : runs_) {
      runs.push_back(p.run);
      if (!p.run.ok) failed.push_back(p.run.name);
    }
    const eval::AblationReport r = eval::ablation_report(plan_, base, runs);
    eval::write_ablation_report(r, a_.out);
    std::printf("\n%s\nwrote %s/report.md, report.csv, report.json", r.markdown.c_str(), a_.out.c_str());
    for (const auto& [file, svg] : r.plots) std::printf(", %s", file.c_str());
    std::printf("\n");
    if (!failed.empty()) {
      std::string names;
      for (const std::string& n : failed) names += (names.empty() ? "" : ", ") + n;
      fail(a_.out, std::to_string(failed.size()) + " of " + std::to_string(runs_.size()) + " runs failed: " + names +
                       " (logs: " + a_.out + "/runs/<run>/log.txt)");
    }
  }
};

}  // namespace

void add_ablate_command(CLI::App& app) {
  auto a = std::make_shared<AblateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "ablate", "train recipes over a grid of overrides and seeds, evaluate every run and the base model, report");
  cmd->add_option("recipes", a->recipes, "training recipes, one per method; the first is the baseline (plain fine-tuning)")
      ->required();
  cmd->add_option("--grid", a->grid, "key=value1,value2: recipe override values to cross (repeatable; values without commas)")
      ->allow_extra_args(false);
  cmd->add_option("--seeds", a->seeds, "seeds 0..N-1 per method and grid cell (train.seed)")->capture_default_str();
  cmd->add_option("--eval-corpus", a->corpus, "held-out corpus for perplexity (suite or domain folder, or files)")
      ->required();
  cmd->add_option("--eval-tasks", a->tasks, "tasks for S(m,d) (suite or domain folder, or files)");
  cmd->add_option("--split", a->split, "evaluation split")->capture_default_str();
  cmd->add_option("--max-items", a->max_items, "items per task (0: all)")->capture_default_str();
  cmd->add_option("--max-documents", a->max_documents, "documents per domain corpus for perplexity (0: all)")
      ->capture_default_str();
  cmd->add_option("--target", a->target, "target domain of every recipe (default: the domain of its train.data shard)");
  cmd->add_option("--out,-o", a->out, "ablation folder: runs/, base_eval.json, report.*")->required();
  cmd->add_option("--jobs,-j", a->jobs, "runs in parallel")->capture_default_str();
  cmd->add_flag("--no-deploy", a->no_deploy, "do not export each run (compact format) nor measure it with gemkit-run");
  cmd->add_flag("--report-only", a->report_only,
                "write the report of the runs finished so far; train, evaluate, export and measure nothing");
  cmd->add_option("--runtime", a->runtime, "gemkit-run to measure exported runs with (default: beside gemkit, or BUILD/runtime/)");
  cmd->callback([a] { Ablation(*a).run(); });
}

}  // namespace gemkit::cli
