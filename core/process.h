// Running a child program and collecting what it printed, or keeping it in files. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace gemkit {

struct ProcessResult {
  int exit_code = -1;   // the child's exit status; 128 + N when killed by signal N
  std::string output;   // stdout and stderr together, in the order written
  bool ok() const { return exit_code == 0; }
  std::string tail(size_t max_chars = 2000) const;  // the last lines, for error messages
};

// Runs argv[0] (searched on PATH when it has no '/') with the rest as arguments, waits for it.
// Throws gemkit::Error naming the program only when it cannot be started at all.
ProcessResult run_process(const std::vector<std::string>& argv);

// Where a child's output goes when it is kept in files rather than collected: stderr is
// appended to `log` (created when missing), and stdout too unless `stdout_file` is given, which
// then receives stdout alone (truncated first).
struct ProcessFiles {
  std::string log;
  std::string stdout_file;
};

// Runs the program at `path` (not searched on PATH) with `argv` (argv[0] is the name the child
// sees) and its output in `files`, waits for it and returns its exit status (128 + N when
// killed by signal N). Only the calling thread waits: several threads may each run a child at
// the same time (`gemkit ablate --jobs`). Throws gemkit::Error naming the program only when it
// cannot be started or waited for.
int run_process_to_files(const std::string& path, const std::vector<std::string>& argv, const ProcessFiles& files);

}  // namespace gemkit
