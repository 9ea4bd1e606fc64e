#include "ablate/grid_estimate.h"

#include <algorithm>

namespace gemkit::ablate {

void GridEstimate::plan(int64_t training_steps, int64_t evaluations) {
  steps_to_do_ += std::max<int64_t>(training_steps, 0);
  evals_to_do_ += std::max<int64_t>(evaluations, 0);
}

void GridEstimate::trained(int64_t steps, double seconds) {
  steps_done_ += std::max<int64_t>(steps, 0);
  train_seconds_ += std::max(seconds, 0.0);
}

void GridEstimate::evaluated(double seconds) {
  ++evals_done_;
  eval_seconds_ += std::max(seconds, 0.0);
}

std::optional<double> GridEstimate::seconds_left(int64_t jobs, int64_t runs_left) const {
  const int64_t steps_left = std::max<int64_t>(steps_to_do_ - steps_done_, 0);
  const int64_t evals_left = std::max<int64_t>(evals_to_do_ - evals_done_, 0);
  if ((steps_left > 0 && steps_done_ == 0) || (evals_left > 0 && evals_done_ == 0)) return std::nullopt;
  double work = 0;  // seconds of one worker
  if (steps_left > 0) work += double(steps_left) * train_seconds_ / double(steps_done_);
  if (evals_left > 0) work += double(evals_left) * eval_seconds_ / double(evals_done_);
  return work / double(std::clamp<int64_t>(runs_left, 1, std::max<int64_t>(jobs, 1)));
}

}  // namespace gemkit::ablate
