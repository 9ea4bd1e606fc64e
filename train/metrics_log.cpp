#include "train/metrics_log.h"

#include <ATen/CPUGeneratorImpl.h>
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/file_io.h"
#include "core/torch_compat.h"

namespace gemkit {

double train_flops_per_token(const ModelConfig& c, int64_t matmul_params, int64_t seq_len) {
  const double d_attn = double(c.num_attention_heads * c.head_dim());
  return 6.0 * double(matmul_params) + 6.0 * double(c.num_hidden_layers) * double(seq_len) * d_attn;
}

double measured_matmul_peak_flops(const std::string& device_name) {
  static std::mutex mutex;
  static std::map<std::string, double> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(device_name);
  if (it != cache.end()) return it->second;

  torch::NoGradGuard no_grad;
  const torch::Device device = compat::parse_device(device_name);
  const int64_t n = 1024;
  // A private generator: measuring must not move the global RNG, or a run that measures
  // (the first in a process) would draw different numbers from one that does not.
  auto gen = at::detail::createCPUGenerator(12345);
  torch::Tensor a = torch::randn({n, n}, gen).to(device), b = torch::randn({n, n}, gen).to(device);
  torch::Tensor c = torch::matmul(a, b);  // warm-up: thread pools, BLAS buffers
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  sync();
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const int iters = device.is_cuda() ? 50 : 4;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) c = torch::matmul(a, b);
    sync();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * double(n * n * n) * iters / s);
  }
  cache[device_name] = best;
  return best;
}

double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

MetricsLog::MetricsLog(const std::string& path, bool append) : path_(path) {
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (!file_) fail(path, "cannot open the metrics log for writing");
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const std::string& line) {
  if (!file_) return;
  write_all(file_, line.data(), line.size(), path_);
  write_all(file_, "\n", 1, path_);
  if (std::fflush(file_) != 0) fail(path_, "cannot write the metrics log");
}

// ---------------------------------------------------------------------------------------------
ConsoleProgress::ConsoleProgress(int64_t every) : tty_(isatty(STDOUT_FILENO) != 0), every_(every) {}

std::string duration_text(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  char buf[32];
  const long long t = (long long)(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  return buf;
}

void ConsoleProgress::update(int64_t step, int64_t total, double loss, double lr, double grad_norm,
                             double tokens_per_s, double eta_s, bool skipped) {
  const int64_t done = step + 1;
  const bool last = done >= total;
  if (!tty_ && done % every_ != 0 && !last && !skipped) return;
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %lld/%lld (%.0f%%) | loss %.4f | lr %.2e | grad %.3f | %.0f tok/s | eta %s%s",
                (long long)done, (long long)total, total > 0 ? 100.0 * done / total : 0.0, loss, lr, grad_norm,
                tokens_per_s, duration_text(eta_s).c_str(), skipped ? " | SKIPPED" : "");
  if (tty_) {
    std::printf("\r\033[K%s", buf);
    line_open_ = true;
  } else {
    std::printf("%s\n", buf);
  }
  std::fflush(stdout);
}

void ConsoleProgress::message(const std::string& text) {
  if (line_open_) std::printf("\n");
  line_open_ = false;
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void ConsoleProgress::finish() {
  if (line_open_) std::printf("\n");
  line_open_ = false;
  std::fflush(stdout);
}

}  // namespace gemkit
