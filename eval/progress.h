// Console progress for long evaluations: "label: 120/800 items, 14.2 items/s, ETA 48 s",
// redrawn in place on stderr at most twice a second. Torch-free.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace gemkit::eval {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "items");
  void update(int64_t done);  // absolute count
  void finish();              // final line with the total time
  double seconds() const;

 private:
  void draw(bool final);
  std::string label_, unit_;
  int64_t total_ = 0, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_ = false;
};

}  // namespace gemkit::eval
