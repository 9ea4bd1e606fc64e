#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace gemkit {

ScheduleKind parse_schedule_kind(const std::string& name, const std::string& where) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  fail(where, "unknown schedule '" + name + "'; expected constant, linear or cosine");
}

double lr_at(const ScheduleOptions& o, int64_t step) {
  if (step < 0) step = 0;
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.peak_lr * double(step + 1) / double(o.warmup_steps);
  if (o.kind == ScheduleKind::Constant) return o.peak_lr;
  const int64_t decay_steps = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
  // Past the planned end (a budget in tokens or epochs can overrun the step estimate) the rate
  // stays at its final value rather than rising again.
  const double p = std::min(1.0, double(step - o.warmup_steps) / double(decay_steps));
  const double lo = o.min_lr_ratio;
  const double factor = o.kind == ScheduleKind::Linear ? 1.0 - (1.0 - lo) * p
                                                       : lo + (1.0 - lo) * 0.5 * (1.0 + std::cos(M_PI * p));
  return o.peak_lr * factor;
}

}  // namespace gemkit
