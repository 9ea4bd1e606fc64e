// How long the rest of an ablation grid will take, from the work each run still has: its
// training steps left (a resumed run has fewer, a finished one none) and its evaluation. The
// time per training step and per evaluation are measured on the runs finished so far, so runs
// that only needed evaluating (copied or resumed after training) do not make the grid look faster.
#pragma once

#include <cstdint>
#include <optional>

namespace gemkit::ablate {

class GridEstimate {
 public:
  // What the grid has to do when it starts (summed over its unfinished runs).
  void plan(int64_t training_steps, int64_t evaluations);
  // A stage finished by one worker, with its wall time (which already includes the slowdown of
  // the other jobs sharing the machine).
  void trained(int64_t steps, double seconds);
  void evaluated(double seconds);
  // Seconds left with `jobs` workers and `runs_left` runs not finished (fewer runs than workers
  // cannot use them all); nullopt until each kind of work still to do has been timed once.
  std::optional<double> seconds_left(int64_t jobs, int64_t runs_left) const;

 private:
  int64_t steps_to_do_ = 0, evals_to_do_ = 0;
  int64_t steps_done_ = 0, evals_done_ = 0;
  double train_seconds_ = 0, eval_seconds_ = 0;
};

}  // namespace gemkit::ablate
