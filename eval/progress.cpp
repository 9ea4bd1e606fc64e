#include "eval/progress.h"

#include <unistd.h>

#include <cstdio>

namespace gemkit::eval {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_draw_(start_), tty_(isatty(fileno(stderr)) != 0) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  // A log file (not a terminal) gets a line every 10 s instead of carriage-return redraws.
  const double interval = tty_ ? 0.5 : 10.0;
  if (std::chrono::duration<double>(now - last_draw_).count() < interval) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  done_ = total_;
  draw(true);
}

void Progress::draw(bool final) {
  const double s = seconds();
  const double rate = s > 0 ? double(done_) / s : 0.0;
  if (final) {
    std::fprintf(stderr, "%s%s: %lld %s in %.1f s (%.1f %s/s)%s\n", tty_ ? "\r" : "", label_.c_str(),
                 (long long)total_, unit_.c_str(), s, rate, unit_.c_str(), tty_ ? "\033[K" : "");
    return;
  }
  const double eta = rate > 0 ? double(total_ - done_) / rate : 0.0;
  std::fprintf(stderr, "%s%s: %lld/%lld %s, %.1f %s/s, ETA %.0f s%s", tty_ ? "\r" : "", label_.c_str(),
               (long long)done_, (long long)total_, unit_.c_str(), rate, unit_.c_str(), eta, tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

}  // namespace gemkit::eval
