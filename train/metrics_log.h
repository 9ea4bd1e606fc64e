// What a training run reports: one JSON object per step in metrics.jsonl, and a live console
// line. Also the figures those need: FLOPs per token, a measured matmul peak (for MFU), peak
// resident memory.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "formats/model_config.h"

namespace gemkit {

// Training FLOPs per token (forward + backward), the PaLM/Chinchilla estimate:
//   6 * N  +  6 * L * T * d_attn
// N: parameters that take part in matmuls (all but the input embedding table, whose lookup is
// free); the second term is the attention score and value matmuls, QK^T and AV, each
// 2 * T * d_attn FLOPs per token per layer forward, times 3 for forward + backward
// (d_attn = heads * head_dim, T = sequence length; causal masking is not discounted, as in
// PaLM's MFU definition).
double train_flops_per_token(const ModelConfig& config, int64_t matmul_params, int64_t seq_len);

// fp32 GEMM throughput of this machine in FLOP/s: a few 1024x1024 matmuls on `device`, timed
// after a warm-up; measured once per process and cached.
double measured_matmul_peak_flops(const std::string& device);

// Peak resident set size of this process in MB (getrusage).
double peak_rss_mb();

// Appends JSON lines to a file, flushed after each line so a killed run keeps every finished
// step. `append` false starts a new file; a resumed run first puts back the checkpoint's copy of
// the log (dropping steps logged after that checkpoint) and then appends.
class MetricsLog {
 public:
  MetricsLog() = default;
  MetricsLog(const std::string& path, bool append);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const std::string& json_line);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// A remaining or elapsed time for progress lines: "12m05s", "2h10m"; "?" when unknown.
std::string duration_text(double seconds);

// The console: a single line rewritten with \r when stdout is a terminal, one line every
// `every` steps otherwise (logs stay readable).
class ConsoleProgress {
 public:
  explicit ConsoleProgress(int64_t every = 10);
  void update(int64_t step, int64_t total_steps, double loss, double lr, double grad_norm,
              double tokens_per_s, double eta_s, bool skipped);
  void message(const std::string& text);  // a line of its own (checkpoint written, ...)
  void finish();

 private:
  bool tty_;
  int64_t every_;
  bool line_open_ = false;
};

}  // namespace gemkit
