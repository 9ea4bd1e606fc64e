// `gemkit train` end to end, through the built binary: the run folder (metrics.jsonl fields,
// checkpoints, resolved_recipe.toml), --resume continuing bit for bit, clean failures, `gemkit
// plot`, LoRA mode (PEFT adapter folders, frozen base, exact resume with dropout) and data
// parallel training of two ranks over c10d against one process on the combined batch.
//
// The tokenizer, the tiny checkpoint and the data/mini token shards are built once per build of
// the binary and shared by the test processes (ctest runs each test in its own), under a lock.
// Every child process runs under a deadline and is killed when it overruns it.
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "formats/safetensors.h"
#include "model/state_dict.h"

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kSource = GEMKIT_SOURCE_DIR;
const std::string kBin = GEMKIT_BIN;
constexpr int kDeadlineS = 300;  // per gemkit process; far above the seconds these runs take

struct Result {
  int code = -1;  // exit status; 128 + signal when killed
  std::string out;  // stdout and stderr
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string work_dir() { return std::string(GEMKIT_BINARY_DIR) + "/tests/test_train_cli_work"; }
std::string unique(const std::string& name) { return work_dir() + "/" + name + "." + std::to_string(::getpid()); }

// Starts `gemkit ARGS...` from the source root with `env` added (torchrun's variables are
// dropped from the inherited environment); stdout and stderr go to `log`.
pid_t spawn_gemkit(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& log) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string s = *e;
    bool drop = false;
    for (const char* k : {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "MASTER_ADDR=", "MASTER_PORT=", "OMP_NUM_THREADS="})
      drop = drop || s.rfind(k, 0) == 0;
    if (!drop) env_strings.push_back(s);
  }
  env_strings.push_back("OMP_NUM_THREADS=1");
  for (const std::string& e : env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings{kBin};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  // The recipes' relative paths are relative to the source root.
  const std::string cwd = fs::current_path().string();
  fs::current_path(kSource);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, kBin.c_str(), &actions, nullptr, argv.data(), envp.data());
  fs::current_path(cwd);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

// Waits for every pid until `deadline_s`, then SIGKILLs the rest. Exit codes (128 + signal when
// killed, -1 when the spawn failed); `timed_out` says whether anything had to be killed.
std::vector<int> wait_all(const std::vector<pid_t>& pids, int deadline_s, bool& timed_out) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(deadline_s);
  std::vector<int> codes(pids.size(), -1);
  std::vector<bool> done(pids.size(), false);
  timed_out = false;
  for (size_t i = 0; i < pids.size(); ++i) done[i] = pids[i] <= 0;
  for (;;) {
    bool all = true;
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int st = 0;
      if (::waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        done[i] = true;
        codes[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      } else {
        all = false;
      }
    }
    if (all) return codes;
    if (std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      for (size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) {
          ::kill(pids[i], SIGKILL);
          int st = 0;
          ::waitpid(pids[i], &st, 0);
          codes[i] = 128 + SIGKILL;
        }
      return codes;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result run_gemkit(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  static int counter = 0;
  fs::create_directories(work_dir());
  const std::string log = unique("log") + "." + std::to_string(counter++);
  bool timed_out = false;
  Result r;
  r.code = wait_all({spawn_gemkit(args, env, log)}, kDeadlineS, timed_out)[0];
  r.out = slurp(log);
  if (timed_out) r.out += "\n[killed after " + std::to_string(kDeadlineS) + " s]";
  fs::remove(log);
  return r;
}

std::string describe(const Result& r) { return "exit " + std::to_string(r.code) + "\n" + r.out; }

void expect_clean_failure(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.out.find("gemkit: error: "), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find(needle), std::string::npos) << "expected '" << needle << "'\n" << describe(r);
}

// fixture/tok, fixture/model (a 2-layer Llama of width 64), fixture/train.h5 and
// fixture/validation.h5 (data/mini/general), fixture/short_docs.h5 (data/mini/commonsense), fixture/law.h5
// (data/mini/law), rebuilt when the binary changes.
std::string fixture() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = work_dir() + "/fixture";
  fs::create_directories(work_dir());
  const int lock = ::open((work_dir() + "/fixture.lock").c_str(), O_CREAT | O_RDWR, 0644);
  EXPECT_GE(lock, 0);
  ::flock(lock, LOCK_EX);
  struct stat st;
  ::stat(kBin.c_str(), &st);
  // The leading version changes whenever the fixture's contents do.
  const std::string stamp = "3 " + std::to_string(st.st_mtime) + " " + std::to_string(st.st_size);
  if (slurp(dir + "/stamp") != stamp) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    bool ok = true;
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"tokenizer", "train", "--input", "data/mini/general/moby_dick.txt", "--out", dir + "/tok",
              "--vocab-size", "600", "--model-type", "bpe"},
             {"model", "init", "--recipe", "recipes/models/tiny_llama.toml", "--tokenizer", dir + "/tok", "--out",
              dir + "/model", "model.init.hidden_size=64", "model.init.intermediate_size=128",
              "model.init.num_hidden_layers=2", "model.init.num_attention_heads=4",
              "model.init.num_key_value_heads=2", "model.init.seed=3"},
             {"data", "prepare", "--quiet", "--tokenizer", dir + "/tok", "--out", dir + "/train.h5",
              "data/mini/general/train.jsonl"},
             {"data", "prepare", "--quiet", "--tokenizer", dir + "/tok", "--out", dir + "/validation.h5",
              "data/mini/general/validation.jsonl"},
             // Short documents (~80 tokens): packed rows of 32 often hold a document boundary, so
             // rows (and ranks) carry different numbers of loss targets.
             {"data", "prepare", "--quiet", "--tokenizer", dir + "/tok", "--out", dir + "/short_docs.h5",
              "data/mini/commonsense/train.jsonl"},
             {"data", "prepare", "--quiet", "--tokenizer", dir + "/tok", "--out", dir + "/law.h5",
              "data/mini/law/train.jsonl"}}) {
      const Result r = run_gemkit(args);
      EXPECT_EQ(r.code, 0) << describe(r);
      ok = ok && r.code == 0;
    }
    if (ok) std::ofstream(dir + "/stamp") << stamp;
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return dir;
}

// A small fine-tuning recipe on the fixture; constant learning rate so that a run extended
// with --resume and a larger max_steps has the same schedule as one that ran straight through.
std::string write_recipe(const std::string& name, const std::string& extra_train = "") {
  const std::string fix = fixture();  // also creates the work folder
  const std::string path = unique(name) + ".toml";
  std::ofstream(path) << "[model]\npath = \"" << fix << "/model\"\n\n[train]\n"
                      << "data = [\"" << fix << "/train.h5\"]\n"
                      << "validation = \"" << fix << "/validation.h5\"\n"
                      << "batch_size = 4\nseq_len = 32\nlr = 1e-3\nschedule = \"constant\"\n"
                      << "max_steps = 6\ncheckpoint_every = 3\nkeep_last = 0\neval_max_batches = 2\n"
                      << extra_train;
  return path;
}

std::vector<json> read_metrics(const std::string& run) {
  std::vector<json> lines;
  std::ifstream f(run + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) lines.push_back(json::parse(line));
  return lines;
}

// step -> loss of the optimizer-step lines (validation-only lines have no loss).
std::map<int64_t, double> losses(const std::vector<json>& metrics) {
  std::map<int64_t, double> out;
  for (const json& m : metrics)
    if (m.contains("loss")) out[m.at("step").get<int64_t>()] = m.at("loss").get<double>();
  return out;
}

std::map<std::string, torch::Tensor> read_tensors(const std::string& path) {
  gemkit::SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> out;
  for (const gemkit::TensorView& v : file.tensors()) out[v.name] = gemkit::to_tensor(v).clone();
  return out;
}

using gemkit::test::free_port;

}  // namespace

TEST(TrainCli, RunFolderHasMetricsCheckpointsAndResolvedRecipe) {
  const std::string recipe = write_recipe("basic"), run = unique("basic");
  fs::remove_all(run);
  const Result r = run_gemkit({"train", recipe, "--out", run});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("done: 6 steps"), std::string::npos) << r.out;

  const std::vector<json> metrics = read_metrics(run);
  ASSERT_EQ(losses(metrics).size(), 6u);
  for (const json& m : metrics) {
    if (!m.contains("loss")) continue;
    for (const char* key : {"step", "loss", "loss/task", "lr", "grad_norm", "tokens", "tokens_seen", "epoch",
                            "tokens_per_s", "mfu", "peak_rss_mb", "step_s", "elapsed_s", "skipped"})
      EXPECT_TRUE(m.contains(key)) << key << " missing in " << m.dump();
    EXPECT_TRUE(m.at("loss").is_number()) << m.dump();
    EXPECT_EQ(m.at("tokens").get<int64_t>(), 4 * 32) << m.dump();  // packed rows are full
    EXPECT_DOUBLE_EQ(m.at("lr").get<double>(), 1e-3);
    EXPECT_FALSE(m.at("skipped").get<bool>());
  }
  EXPECT_TRUE(metrics[2].contains("val_loss")) << metrics[2].dump();  // validated at each checkpoint
  EXPECT_EQ(metrics.back().at("tokens_seen").get<int64_t>(), 6 * 4 * 32);

  for (const char* step : {"step-0000003", "step-0000006"})
    for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
                          "metrics.jsonl", "resolved_recipe.toml", "tokenizer.model"})
      EXPECT_TRUE(fs::exists(run + "/" + step + "/" + f)) << step << "/" << f;
  EXPECT_EQ(slurp(run + "/latest"), "step-0000006\n");
  const std::string resolved = slurp(run + "/resolved_recipe.toml");
  EXPECT_NE(resolved.find("max_steps = 6"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("mode = \"full\""), std::string::npos) << resolved;  // defaults filled in
  // A second run into the same folder without --resume is refused.
  expect_clean_failure(run_gemkit({"train", recipe, "--out", run}), "pass --resume");

  // gemkit plot RUN: an SVG document with a panel per metric.
  const Result plot = run_gemkit({"plot", run});
  ASSERT_EQ(plot.code, 0) << describe(plot);
  const std::string svg = slurp(run + "/metrics.svg");
  ASSERT_FALSE(svg.empty());
  const size_t open = svg.find("<svg");
  ASSERT_NE(open, std::string::npos) << svg.substr(0, 200);
  EXPECT_TRUE(svg.rfind("<?xml", 0) == 0 || open == 0) << svg.substr(0, 200);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  const size_t close = svg.rfind("</svg>");
  ASSERT_NE(close, std::string::npos);
  EXPECT_EQ(svg.find_first_not_of(" \n", close + 6), std::string::npos) << "content after </svg>";
  EXPECT_NE(svg.find(">loss<"), std::string::npos) << "no loss panel title";
  fs::remove_all(run);
  fs::remove(recipe);
}

TEST(TrainCli, ResumeWithLargerBudgetMatchesUninterruptedRunBitForBit) {
  const std::string recipe = write_recipe("resume"), part = unique("resume_part"), whole = unique("resume_whole");
  fs::remove_all(part);
  fs::remove_all(whole);
  Result r = run_gemkit({"train", recipe, "--out", part, "train.max_steps=3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = run_gemkit({"train", recipe, "--out", part, "--resume", "train.max_steps=6"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
  r = run_gemkit({"train", recipe, "--out", whole});
  ASSERT_EQ(r.code, 0) << describe(r);

  const auto a = losses(read_metrics(part)), b = losses(read_metrics(whole));
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (const auto& [step, loss] : b) EXPECT_EQ(a.at(step), loss) << "step " << step;  // exact doubles
  EXPECT_EQ(slurp(part + "/step-0000006/model.safetensors"), slurp(whole + "/step-0000006/model.safetensors"));
  // Every generator's state too, the global torch one included: `gemkit train` seeds it from
  // train.seed (LibTorch seeds it from the OS), so a resumed run and an uninterrupted one agree.
  EXPECT_EQ(json::parse(slurp(part + "/step-0000006/trainer_state.json")).at("rng"),
            json::parse(slurp(whole + "/step-0000006/trainer_state.json")).at("rng"));
  fs::remove_all(part);
  fs::remove_all(whole);
  fs::remove(recipe);
}

// GEM (methods/gem.h, methods/akp.h): a frozen base with a SCAR expert
// for commonsense beside the general path, the token router on block 1 (of 2), general replay, distillation, EWC with a cached Fisher and the forgetting budget. The run
// logs every part's figures, stops and resumes bit for bit, and its checkpoint evaluates as a
// routed model.
TEST(TrainCli, GemRunLogsRoutingAndPreservationAndResumesExactly) {
  const std::string fix = fixture();
  const std::string cache = unique("gem_fisher");
  const std::string extra =
      "mode = \"frozen\"\ndata_weights = [\"3\", \"1\"]\n"
      "[scar]\nenabled = true\nexperts = [\"commonsense\"]\nrank = 4\nrouter_dim = 16\n"
      "[dtr]\nenabled = true\nblocks = [\"1\"]\ncapacity = 0.5\nanneal_steps = 2\n"
      "[akp]\nkd_weight = 1.0\newc_weight = 10.0\nfisher_data = \"" + fix + "/validation.h5\"\nfisher_sequences = 4\n"
      "fisher_cache = \"" + cache + "\"\nbudget = 0.01\nbudget_every = 2\nbudget_data = \"" + fix + "/validation.h5\"\n"
      "budget_batches = 1\n";
  std::string recipe = write_recipe("gem", extra);
  {
    // Two sources: the commonsense shard (the domain) and the general one (replay).
    std::string text = slurp(recipe);
    const std::string from = "data = [\"" + fix + "/train.h5\"]";
    text.replace(text.find(from), from.size(), "data = [\"" + fix + "/short_docs.h5\", \"" + fix + "/train.h5\"]");
    std::ofstream(recipe) << text;
  }
  const std::string part = unique("gem_part"), whole = unique("gem_whole");
  fs::remove_all(part);
  fs::remove_all(whole);
  Result r = run_gemkit({"train", recipe, "--out", whole});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("fisher"), std::string::npos) << r.out;
  r = run_gemkit({"train", recipe, "--out", part, "train.max_steps=3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("fisher: read"), std::string::npos) << "the second run reads the Fisher from the cache:\n" << r.out;
  r = run_gemkit({"train", recipe, "--out", part, "--resume"});
  ASSERT_EQ(r.code, 0) << describe(r);

  const auto a = losses(read_metrics(part)), b = losses(read_metrics(whole));
  ASSERT_EQ(b.size(), 6u);
  for (const auto& [step, loss] : b) EXPECT_EQ(a.at(step), loss) << "step " << step;
  const auto metrics = read_metrics(whole);
  const json& last = [&]() -> const json& {
    for (auto it = metrics.rbegin(); it != metrics.rend(); ++it)
      if (it->contains("loss")) return *it;
    return metrics.back();
  }();
  for (const char* key : {"loss/kd", "loss/ewc", "loss/dtr_aux", "loss/scar_balance", "loss/scar_z",
                          "loss/scar_supervision", "dtr/realised_capacity", "dtr/predictor_accuracy",
                          "dtr/flops_saved", "scar/experts_per_token", "scar/entropy", "scar/load/general",
                          "scar/load/commonsense", "scar/domain_accuracy", "akp/scale", "akp/lambda_kd",
                          "akp/lambda_ewc"})
    EXPECT_TRUE(last.contains(key)) << key << " missing in " << last.dump();
  // The penalty is zero before the experts move (B = 0 at step 0) and positive after.
  EXPECT_EQ(metrics.front().at("loss/ewc").get<double>(), 0.0);
  EXPECT_GT(last.at("loss/ewc").get<double>(), 0.0);
  EXPECT_GT(last.at("loss/kd").get<double>(), 0.0);
  EXPECT_NEAR(last.at("dtr/realised_capacity").get<double>(), 0.5, 0.05);  // annealed to 0.5
  bool measured = false;
  for (const json& m : metrics) measured = measured || m.contains("akp/rise");
  EXPECT_TRUE(measured) << "the forgetting budget was never measured";

  const std::string ckpt = whole + "/step-0000006";
  EXPECT_TRUE(fs::exists(ckpt + "/gem.json"));
  EXPECT_TRUE(fs::exists(ckpt + "/akp_state.json"));
  // The base weights are untouched (frozen), the routing lives in extra.safetensors.
  EXPECT_EQ(slurp(ckpt + "/model.safetensors"), slurp(fix + "/model/model.safetensors"));
  r = run_gemkit({"eval", "--model", ckpt, "--corpus", "data/mini/general/validation.jsonl", "--split", "validation",
                  "--out", unique("gem_eval") + ".json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json report = json::parse(slurp(unique("gem_eval") + ".json"));
  EXPECT_TRUE(report.at("model").contains("routing"));
  EXPECT_TRUE(report.at("results").at(0).at("stats").contains("scar/load/general")) << report.dump();
  for (const std::string& dir : {part, whole, cache}) fs::remove_all(dir);
  fs::remove(recipe);
}

// Online EWC over two sequential stages (methods/akp.h): stage 1 ends by writing
// its consolidated anchor; stage 2 starts from stage 1's checkpoint with that anchor, so its
// penalty is exactly zero before the first update and positive after.
TEST(TrainCli, OnlineEwcCarriesTheAnchorToTheNextStage) {
  const std::string fix = fixture();
  const std::string cache = unique("ewc_cache"), stage1 = unique("ewc_stage1"), stage2 = unique("ewc_stage2");
  for (const std::string& d : {cache, stage1, stage2}) fs::remove_all(d);
  const std::string recipe = write_recipe("ewc", "[akp]\newc_weight = 100.0\nfisher_data = \"" + fix +
                                                      "/validation.h5\"\nfisher_sequences = 4\nfisher_cache = \"" + cache +
                                                      "\"\newc_gamma = 0.5\n");
  Result r = run_gemkit({"train", recipe, "--out", stage1, "train.max_steps=3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_TRUE(fs::exists(stage1 + "/ewc_anchor.safetensors")) << r.out;
  r = run_gemkit({"train", recipe, "--out", stage2, "model.path=" + stage1 + "/step-0000003",
                  "akp.ewc_previous=" + stage1 + "/ewc_anchor.safetensors", "train.max_steps=3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const auto metrics = read_metrics(stage2);
  std::vector<double> ewc;
  for (const json& m : metrics)
    if (m.contains("loss/ewc")) ewc.push_back(m.at("loss/ewc").get<double>());
  ASSERT_EQ(ewc.size(), 3u);
  EXPECT_EQ(ewc[0], 0.0);
  EXPECT_GT(ewc[2], 0.0);
  // The anchor of stage 2 is stage 1's importance halved plus the new Fisher: larger than half.
  const auto a1 = read_tensors(stage1 + "/ewc_anchor.safetensors"), a2 = read_tensors(stage2 + "/ewc_anchor.safetensors");
  const std::string name = "importance.model.layers.0.mlp.down_proj.weight";
  ASSERT_TRUE(a1.count(name) && a2.count(name));
  EXPECT_TRUE((a2.at(name) >= 0.5 * a1.at(name) - 1e-12).all().item<bool>());
  EXPECT_GT((a2.at(name) - 0.5 * a1.at(name)).sum().item<double>(), 0.0);
  for (const std::string& d : {cache, stage1, stage2}) fs::remove_all(d);
  fs::remove(recipe);
}

// Sequential GEM (docs/multi-domain.md): stage 2 starts from stage 1's routed checkpoint, adds an
// expert for its own domain and keeps stage 1's expert frozen. The frozen expert's adapters and
// router key row come out of stage 2 bit for bit as stage 1 left them, while the new expert and
// the shared router query train.
TEST(TrainCli, SequentialGemStageAddsAnExpertAndKeepsTheEarlierOneFrozen) {
  const std::string fix = fixture();
  const std::string stage1 = unique("seq_stage1"), stage2 = unique("seq_stage2");
  for (const std::string& d : {stage1, stage2}) fs::remove_all(d);
  const std::string scar = "[scar]\nenabled = true\nexperts = [\"commonsense\"]\nrank = 4\nrouter_dim = 16\n";
  std::string recipe = write_recipe("seq", "mode = \"frozen\"\n" + scar);
  {
    std::string text = slurp(recipe);
    const std::string from = "data = [\"" + fix + "/train.h5\"]";
    text.replace(text.find(from), from.size(), "data = [\"" + fix + "/short_docs.h5\", \"" + fix + "/train.h5\"]");
    std::ofstream(recipe) << text;
  }
  Result r = run_gemkit({"train", recipe, "--out", stage1, "train.max_steps=3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string ckpt1 = stage1 + "/step-0000003";
  const std::vector<std::string> stage2_args = {
      "train", recipe, "--out", stage2, "train.max_steps=3", "model.path=" + ckpt1,
      "train.data=" + fix + "/law.h5," + fix + "/train.h5", "scar.experts=commonsense,law"};

  // Refused before training: a frozen expert no earlier stage trained, a dropped earlier expert,
  // another expert layout.
  auto with = [&](std::vector<std::string> args, const std::string& extra) {
    args.push_back(extra);
    return args;
  };
  expect_clean_failure(run_gemkit(with(stage2_args, "scar.frozen_experts=law")), "was not trained by an earlier stage");
  expect_clean_failure(run_gemkit(with(with(stage2_args, "scar.experts=law"), "scar.frozen_experts=commonsense")),
                       "every earlier expert must be kept");
  expect_clean_failure(run_gemkit(with(stage2_args, "scar.rank=8")), "scar.rank of the earlier stage differs");
  fs::remove_all(stage2);

  const auto trainable = [](const std::string& out) {  // "..., N trainable)" of gemkit train's first line
    const size_t end = out.find(" trainable)");
    const size_t begin = out.rfind(' ', end - 1);
    return end == std::string::npos ? -1L : std::stol(out.substr(begin + 1, end - begin - 1));
  };
  const long stage1_trainable = trainable(run_gemkit({"train", recipe, "--out", unique("seq_count"), "train.max_steps=1"}).out);
  fs::remove_all(unique("seq_count"));
  r = run_gemkit(with(stage2_args, "scar.frozen_experts=commonsense"));
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("continuing the routing of"), std::string::npos) << r.out;
  // Stage 2 trains the law expert (as large as commonsense's) and one more router key row per
  // routed block (two blocks, width 16): the frozen expert does not count.
  EXPECT_EQ(trainable(r.out), stage1_trainable + 2 * 16) << r.out;
  const auto before = read_tensors(ckpt1 + "/extra.safetensors");
  const auto after = read_tensors(stage2 + "/step-0000003/extra.safetensors");
  int frozen_adapters = 0, new_adapters = 0;
  for (const auto& [name, t] : after) {
    if (name.rfind("scar.experts.commonsense.", 0) == 0) {
      ASSERT_TRUE(before.count(name)) << name;
      EXPECT_TRUE(torch::equal(t, before.at(name))) << name << " changed although frozen";
      ++frozen_adapters;
    } else if (name.rfind("scar.experts.law.", 0) == 0 && name.find("lora_B") != std::string::npos) {
      EXPECT_GT(t.abs().max().item<double>(), 0.0) << name << " did not train (B starts at zero)";
      ++new_adapters;
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".keys") == 0) {
      ASSERT_EQ(t.size(0), 3) << name << ": general, commonsense, law";
      EXPECT_TRUE(torch::equal(t[1], before.at(name)[1])) << name << ": the frozen expert's key row moved";
      EXPECT_FALSE(torch::equal(t[0], before.at(name)[0])) << name << ": the general key row should train";
    } else if (name.size() > 6 && name.compare(name.size() - 6, 6, ".query") == 0) {
      EXPECT_FALSE(torch::equal(t, before.at(name))) << name << ": the shared query should train";
    }
  }
  EXPECT_GT(frozen_adapters, 0);
  EXPECT_GT(new_adapters, 0);
  // With the general key row and the router queries frozen too, only the new expert's key row
  // and adapters train: every earlier routing tensor comes out as stage 1 left it.
  const std::string stage2b = unique("seq_stage2b");
  fs::remove_all(stage2b);
  std::vector<std::string> args_b = stage2_args;
  args_b[3] = stage2b;
  r = run_gemkit(with(with(args_b, "scar.frozen_experts=general,commonsense"), "scar.frozen_query=true"));
  ASSERT_EQ(r.code, 0) << describe(r);
  for (const auto& [name, t] : read_tensors(stage2b + "/step-0000003/extra.safetensors")) {
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".keys") == 0) {
      EXPECT_TRUE(torch::equal(t.slice(0, 0, 2), before.at(name))) << name << ": an earlier key row moved";
    } else if (name.size() > 6 && name.compare(name.size() - 6, 6, ".query") == 0) {
      EXPECT_TRUE(torch::equal(t, before.at(name))) << name << ": the frozen query moved";
    }
  }
  fs::remove_all(stage2b);
  // A frozen query needs an earlier stage to have trained it.
  expect_clean_failure(run_gemkit({"train", recipe, "--out", unique("seq_bad"), "train.max_steps=1", "scar.frozen_query=true"}),
                       "a frozen query would stay at its random initialisation");
  fs::remove_all(unique("seq_bad"));

  // The stage-2 checkpoint routes over both experts at evaluation.
  r = run_gemkit({"eval", "--model", stage2 + "/step-0000003", "--corpus", "data/mini/law/validation.jsonl", "--split",
                  "validation", "--out", unique("seq_eval") + ".json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(json::parse(slurp(unique("seq_eval") + ".json")).at("results").at(0).at("stats").contains("scar/load/law"));
  for (const std::string& d : {stage1, stage2}) fs::remove_all(d);
  fs::remove(recipe);
  fs::remove(unique("seq_eval") + ".json");
}

TEST(TrainCli, BadRecipeAndMissingShardAreCleanErrors) {
  const std::string run = unique("bad");
  const std::string typo = unique("typo") + ".toml";
  std::ofstream(typo) << "[train]\ndata = [\"x.h5\"]\nmax_step = 3\n";
  expect_clean_failure(run_gemkit({"train", typo, "--out", run}),
                       "train.max_step: unknown key; did you mean train.max_steps?");
  const std::string recipe = write_recipe("bad");
  expect_clean_failure(run_gemkit({"train", recipe, "--out", run, "train.mode=lorra"}),
                       "train.mode: expected one of full, frozen, lora");
  expect_clean_failure(run_gemkit({"train", recipe, "--out", run, "train.data=/nonexistent/shard.h5"}),
                       "/nonexistent/shard.h5");
  expect_clean_failure(run_gemkit({"train", recipe, "--out", run, "train.lora_merge_on_save=true"}),
                       "train.lora_merge_on_save");
  EXPECT_FALSE(fs::exists(run + "/latest"));
  fs::remove_all(run);
  fs::remove(typo);
  fs::remove(recipe);
}

TEST(TrainCli, LoraWritesPeftAdaptersKeepsTheBaseAndResumesExactlyWithDropout) {
  const std::string lora = "mode = \"lora\"\nlora_merge_on_save = true\n\n[lora]\nrank = 4\nalpha = 8\n"
                           "dropout = 0.2\ntarget_modules = [\"q_proj\", \"v_proj\", \"down_proj\"]\nseed = 5\n";
  const std::string recipe = write_recipe("lora", lora), part = unique("lora_part"), whole = unique("lora_whole");
  fs::remove_all(part);
  fs::remove_all(whole);
  Result r = run_gemkit({"train", recipe, "--out", whole});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = run_gemkit({"train", recipe, "--out", part, "train.max_steps=3", "~train.lora_merge_on_save"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = run_gemkit({"train", recipe, "--out", part, "--resume", "~train.lora_merge_on_save"});
  ASSERT_EQ(r.code, 0) << describe(r);

  // Dropout masks continue from the saved generator states: the same losses bit for bit.
  const auto a = losses(read_metrics(part)), b = losses(read_metrics(whole));
  ASSERT_EQ(b.size(), 6u);
  for (const auto& [step, loss] : b) EXPECT_EQ(a.at(step), loss) << "step " << step;

  const auto base = read_tensors(fixture() + "/model/model.safetensors");
  for (const std::string step : {"step-0000003", "step-0000006"}) {
    const std::string adapter = whole + "/" + step + "/adapter";
    ASSERT_TRUE(fs::exists(adapter + "/adapter_config.json")) << adapter;
    ASSERT_TRUE(fs::exists(adapter + "/adapter_model.safetensors")) << adapter;
    const json config = json::parse(slurp(adapter + "/adapter_config.json"));
    EXPECT_EQ(config.at("peft_type"), "LORA");
    EXPECT_EQ(config.at("r"), 4);
    EXPECT_DOUBLE_EQ(config.at("lora_alpha").get<double>(), 8.0);
    EXPECT_DOUBLE_EQ(config.at("lora_dropout").get<double>(), 0.2);
    EXPECT_EQ(config.at("base_model_name_or_path"), fixture() + "/model");
    // The base weights in the checkpoint are the frozen base's.
    const auto saved = read_tensors(whole + "/" + step + "/model.safetensors");
    ASSERT_EQ(saved.size(), base.size());
    for (const auto& [name, t] : base) EXPECT_TRUE(torch::equal(saved.at(name), t)) << step << " " << name;
  }
  // The adapters trained (B starts at zero) and the final adapter is the last checkpoint's.
  const auto final_adapter = read_tensors(whole + "/adapter/adapter_model.safetensors");
  const auto last = read_tensors(whole + "/step-0000006/adapter/adapter_model.safetensors");
  ASSERT_EQ(final_adapter.size(), 2u * 2u * 3u);  // 2 layers x 3 modules x (A, B)
  double b_norm = 0;
  for (const auto& [name, t] : final_adapter) {
    EXPECT_TRUE(torch::equal(t, last.at(name))) << name;
    if (name.find("lora_B") != std::string::npos) b_norm += t.abs().sum().item<double>();
  }
  EXPECT_GT(b_norm, 0);
  // The merged checkpoint differs from the base exactly in the adapted matrices.
  const auto merged = read_tensors(whole + "/merged/model.safetensors");
  for (const auto& [name, t] : base) {
    const bool adapted = name.find("q_proj") != std::string::npos || name.find("v_proj") != std::string::npos ||
                         name.find("down_proj") != std::string::npos;
    EXPECT_EQ(!torch::equal(merged.at(name), t), adapted) << name;
  }
  EXPECT_TRUE(fs::exists(part + "/adapter/adapter_config.json"));
  EXPECT_FALSE(fs::exists(part + "/merged"));
  fs::remove_all(part);
  fs::remove_all(whole);
  fs::remove(recipe);
}

// Two ranks (this binary's gemkit, RANK 0 and 1 on 127.0.0.1) against one process with the same
// recipe: batch_size 4 is the combined batch, each rank trains on 2 of its rows, 2 micro-batches
// a step, on short packed documents so that the ranks' target counts differ (the loss weights
// must use the global count for the gradients to match).
// Tolerance 1e-5 (losses relative, weights absolute): the ranks compute their halves' forward
// passes and loss sums separately in fp32 and Gloo adds the two gradient halves, so the
// summation order differs from one process's by a few float32 ulps (~1e-7 relative; the
// losses agree to ~1e-7). AdamW divides each coordinate by its own gradient scale, so for
// coordinates whose gradient is near zero those ulps show up in the update at up to lr scale;
// lr 3e-4 and eps 1e-6 (which damps that division) keep the weights within ~5e-7 after 6
// steps (they are O(0.1)). A wrong loss weighting (the mean of the ranks' means) moves them
// by ~7e-4 here.
TEST(TrainCli, TwoRanksMatchOneProcessOnTheCombinedBatch) {
  const std::string recipe = write_recipe("ddp"), ddp = unique("ddp"), single = unique("single");
  const std::string data = "train.data=" + fixture() + "/short_docs.h5";
  fs::remove_all(ddp);
  fs::remove_all(single);
  fs::create_directories(ddp);
  const int port = free_port();
  ASSERT_GT(port, 0);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < 2; ++rank)
    pids.push_back(spawn_gemkit({"train", recipe, "--out", ddp, "train.lr=3e-4", "train.eps=1e-6", "train.grad_accum=2", data},
                                {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank), "WORLD_SIZE=2",
                                 "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port),
                                 "GEMKIT_DIST_TIMEOUT_S=60"},
                                ddp + ".rank" + std::to_string(rank) + ".log"));
  const Result one = run_gemkit({"train", recipe, "--out", single, "train.lr=3e-4", "train.eps=1e-6", "train.grad_accum=2", data});
  bool timed_out = false;
  const std::vector<int> codes = wait_all(pids, kDeadlineS, timed_out);
  EXPECT_FALSE(timed_out) << "ranks killed after " << kDeadlineS << " s";
  const std::string log0 = slurp(ddp + ".rank0.log"), log1 = slurp(ddp + ".rank1.log");
  ASSERT_EQ(codes[0], 0) << log0;
  ASSERT_EQ(codes[1], 0) << log1;
  ASSERT_EQ(one.code, 0) << describe(one);
  EXPECT_NE(log0.find("data parallel: 2 ranks of 2 rows each"), std::string::npos) << log0;
  EXPECT_EQ(log1, "") << "only rank 0 prints";

  const std::vector<json> m_ddp = read_metrics(ddp), m_one = read_metrics(single);
  const auto a = losses(m_ddp), b = losses(m_one);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  double loss_err = 0;
  for (const auto& [step, loss] : b) loss_err = std::max(loss_err, std::abs(a.at(step) - loss) / std::abs(loss));
  EXPECT_LT(loss_err, 1e-5);
  // tokens and tokens/s count the global batch.
  EXPECT_EQ(m_ddp.back().at("tokens_seen"), m_one.back().at("tokens_seen"));
  EXPECT_EQ(m_ddp.front().at("tokens").get<int64_t>(), 2 * 4 * 32);

  double weight_err = 0, moved = 0;
  const auto w_ddp = read_tensors(ddp + "/step-0000006/model.safetensors");
  const auto w_one = read_tensors(single + "/step-0000006/model.safetensors");
  const auto w_init = read_tensors(fixture() + "/model/model.safetensors");
  ASSERT_EQ(w_ddp.size(), w_one.size());
  for (const auto& [name, t] : w_one) {
    weight_err = std::max(weight_err, (w_ddp.at(name) - t).abs().max().item<double>());
    moved = std::max(moved, (t - w_init.at(name)).abs().max().item<double>());
  }
  EXPECT_LT(weight_err, 1e-5);
  EXPECT_GT(moved, 5e-4);  // the comparison is not of untouched weights
  // One checkpoint serves every rank: the loader position is the single process's.
  EXPECT_EQ(json::parse(slurp(ddp + "/step-0000006/trainer_state.json")).at("loader"),
            json::parse(slurp(single + "/step-0000006/trainer_state.json")).at("loader"));
  std::cout << "[train ddp] 2 ranks vs 1 process, 6 steps: loss max rel err " << loss_err << ", weight max err "
            << weight_err << "\n";

  // A combined batch that does not split evenly is refused by every rank before it waits for
  // the others.
  const Result odd = run_gemkit({"train", recipe, "--out", ddp + ".odd", "train.batch_size=3"},
                            {"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)});
  expect_clean_failure(odd, "not divisible by WORLD_SIZE 2");
  fs::remove_all(ddp);
  fs::remove_all(single);
  fs::remove_all(ddp + ".odd");
  fs::remove(ddp + ".rank0.log");
  fs::remove(ddp + ".rank1.log");
  fs::remove(recipe);
}
