// Learning-rate schedules: pure functions of the optimizer step, so a resumed run computes the
// same rate as an uninterrupted one from nothing but the step counter.
//
//   lr(step) = peak * step / warmup                                for step < warmup
//            = peak * decay((step - warmup) / (total - warmup))    afterwards
// decay: constant 1; linear 1 -> min_ratio; cosine min_ratio + (1 - min_ratio)(1 + cos(pi p))/2.
// `step` counts optimizer updates from 0 (the rate of the first update is lr_at(0)); the warmup
// therefore starts at peak/warmup rather than 0, so no update is wasted at rate 0.
#pragma once
#include <cstdint>
#include <string>

namespace gemkit {

enum class ScheduleKind { Constant, Linear, Cosine };

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Cosine;
  double peak_lr = 3e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;   // steps of the whole run; decay ends here
  double min_lr_ratio = 0.1;  // final rate / peak (linear, cosine)
};

// "constant" | "linear" | "cosine"; `where` prefixes the error for anything else.
ScheduleKind parse_schedule_kind(const std::string& name, const std::string& where);

double lr_at(const ScheduleOptions& options, int64_t step);

}  // namespace gemkit
