#include "preservation/forgetting_budget.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace gemkit {

namespace {

constexpr const char* kBudgetFormat = "gemkit-forgetting-budget-v1";

void check(bool ok, const char* field, const std::string& what) {
  if (!ok) fail(std::string("ForgettingBudgetOptions.") + field, what);
}

}  // namespace

void validate(const ForgettingBudgetOptions& o) {
  check(o.every >= 1, "every", "must be >= 1, got " + std::to_string(o.every));
  check(o.budget > 0 && std::isfinite(o.budget), "budget", "must be > 0, got " + std::to_string(o.budget));
  check(o.raise >= 1 && std::isfinite(o.raise), "raise", "must be >= 1, got " + std::to_string(o.raise));
  check(o.lower > 0 && o.lower <= 1, "lower", "must be in (0, 1], got " + std::to_string(o.lower));
  check(o.low_water >= 0 && o.low_water < 1, "low_water", "must be in [0, 1), got " + std::to_string(o.low_water));
  check(o.min_scale > 0 && o.min_scale <= o.initial_scale, "min_scale",
        "must be > 0 and <= initial_scale, got " + std::to_string(o.min_scale));
  check(o.max_scale >= o.initial_scale && std::isfinite(o.max_scale), "max_scale",
        "must be >= initial_scale, got " + std::to_string(o.max_scale));
}

ForgettingBudget::ForgettingBudget(const ForgettingBudgetOptions& options)
    : options_(options), scale_(options.initial_scale) {
  validate(options_);
}

bool ForgettingBudget::due(int64_t step) const { return step > 0 && step % options_.every == 0; }

double ForgettingBudget::update(int64_t step, double general_loss, double base_general_loss) {
  if (!std::isfinite(general_loss))
    fail("ForgettingBudget::update", "general loss at step " + std::to_string(step) + " is not finite");
  if (!(base_general_loss > 0) || !std::isfinite(base_general_loss))
    fail("ForgettingBudget::update", "the base model's general loss must be finite and > 0, got " +
                                         std::to_string(base_general_loss));
  const double rise = general_loss / base_general_loss - 1.0;
  if (rise > options_.budget) scale_ *= options_.raise;
  else if (rise < options_.low_water * options_.budget) scale_ *= options_.lower;
  scale_ = std::clamp(scale_, options_.min_scale, options_.max_scale);
  trajectory_.push_back({step, general_loss, rise, scale_});
  return scale_;
}

nlohmann::json ForgettingBudget::state() const {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : trajectory_)
    points.push_back({{"step", p.step}, {"general_loss", p.general_loss}, {"rise", p.rise}, {"scale", p.scale}});
  return {{"format", kBudgetFormat}, {"scale", scale_}, {"trajectory", points}};
}

void ForgettingBudget::load_state(const nlohmann::json& state, const std::string& where) {
  try {
    if (state.at("format").get<std::string>() != kBudgetFormat)
      fail(where, std::string("forgetting budget state: expected format ") + kBudgetFormat);
    const double scale = state.at("scale").get<double>();
    if (!(scale >= options_.min_scale && scale <= options_.max_scale))
      fail(where, "forgetting budget state: scale " + std::to_string(scale) + " is outside [min_scale, max_scale]");
    std::vector<ForgettingBudgetPoint> points;
    for (const auto& p : state.at("trajectory"))
      points.push_back({p.at("step").get<int64_t>(), p.at("general_loss").get<double>(), p.at("rise").get<double>(),
                        p.at("scale").get<double>()});
    scale_ = scale;
    trajectory_ = std::move(points);
  } catch (const nlohmann::json::exception& e) {
    fail(where, std::string("forgetting budget state: ") + e.what());
  }
}

}  // namespace gemkit
