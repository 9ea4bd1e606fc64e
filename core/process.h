// Running a child program and collecting what it printed. Torch-free.
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

}  // namespace gemkit
