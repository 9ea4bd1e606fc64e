// Adaptive strength of knowledge preservation (docs/design/gem-method.md §4): every `every` steps
// the trainer measures the loss on a fixed held-out general batch; its relative rise over the
// base model's loss on the same batch is compared with a forgetting budget, and one multiplier
// for lambda_kd and lambda_ewc is raised or lowered multiplicatively:
//
//   rise = general_loss / base_general_loss - 1
//   rise > budget                -> scale *= raise   (forgetting more than allowed: hold harder)
//   rise < low_water * budget    -> scale *= lower   (well inside the budget: let the domain learn)
//   otherwise                    -> unchanged        (a dead band, so the scale does not oscillate)
//   scale is kept in [min_scale, max_scale].
//
// The budget is on the LOSS (mean NLL per token); the perplexity drift it allows is
// exp(budget * base_loss) - 1, e.g. 1% of a loss of 4.5 is a 4.6% perplexity rise.
//
// Defaults, and why: every 50 steps (a held-out batch costs one forward; 50 keeps that under
// 2% of the steps while reacting within a few hundred steps); budget 1% (docs/design/gem-method.md);
// raise x2 / lower x0.5 (symmetric in log scale: a wrong move is undone in one update, and
// 7 updates span the 100x range); low water 0.5 (lower only when the rise is under half the
// budget); scale in [0.01, 100] (four orders of magnitude around the recipe's lambdas, so a
// noisy measurement cannot drive preservation to nothing or freeze training).
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace gemkit {

struct ForgettingBudgetOptions {
  int64_t every = 50;       // measure after every N optimizer steps (N >= 1)
  double budget = 0.01;     // allowed relative rise of the general loss (> 0)
  double raise = 2.0;       // multiplier when the rise exceeds the budget (>= 1)
  double lower = 0.5;       // multiplier when the rise is under low_water * budget, in (0, 1]
  double low_water = 0.5;   // in [0, 1)
  double min_scale = 0.01;  // 0 < min_scale <= initial_scale <= max_scale
  double max_scale = 100.0;
  double initial_scale = 1.0;
};

// Throws gemkit::Error "ForgettingBudgetOptions.<field>: ..." for out-of-range values.
void validate(const ForgettingBudgetOptions& options);

// One measurement, as logged.
struct ForgettingBudgetPoint {
  int64_t step = 0;
  double general_loss = 0;
  double rise = 0;   // general_loss / base_general_loss - 1
  double scale = 0;  // the multiplier after this update
};

class ForgettingBudget {
 public:
  explicit ForgettingBudget(const ForgettingBudgetOptions& options = {});

  // True after every `every` optimizer steps (step > 0; step 0 is the base itself).
  bool due(int64_t step) const;
  // Applies the rule above, records the point and returns the new multiplier. Throws
  // gemkit::Error for a non-finite loss or base_general_loss <= 0.
  double update(int64_t step, double general_loss, double base_general_loss);

  double scale() const { return scale_; }
  const ForgettingBudgetOptions& options() const { return options_; }
  const std::vector<ForgettingBudgetPoint>& trajectory() const { return trajectory_; }

  // {"format": "gemkit-forgetting-budget-v1", "scale": s, "trajectory": [{step, general_loss,
  // rise, scale}, ...]}: what a checkpoint stores for an exact resume (doubles round-trip
  // exactly). The options come from the recipe, not from the state.
  nlohmann::json state() const;
  // Restores scale and trajectory; `where` names the file in errors.
  void load_state(const nlohmann::json& state, const std::string& where);

 private:
  ForgettingBudgetOptions options_;
  double scale_;
  std::vector<ForgettingBudgetPoint> trajectory_;
};

}  // namespace gemkit
