// Training speed of gemkit's transformer: the C++ half of bench/train_bench.sh, which runs the
// same configuration through bench/train_bench.py (Python torch 1.13) in the same run.
//
//   train_bench --size 15m|50m [--steps N] [--batch B] [--seq T]
//
// Random token batches (seeded), causal-LM loss, AdamW; the first 2 steps are warm-up and not
// timed. Prints one JSON line: tokens/s, achieved GFLOP/s, the measured fp32 matmul peak, MFU
// and peak RSS. FLOPs per token = 6 * N (N = all parameters that take part in matmuls: the
// tied embedding counts once, as the output projection) + 12 * layers * seq * hidden
// (attention scores and weighted sum, forward and backward; PaLM appendix B).
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "model/transformer.h"

using Clock = std::chrono::steady_clock;

namespace {

gemkit::ModelConfig bench_config(const std::string& size) {
  gemkit::ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 8000;
  c.max_position_embeddings = 1024;
  c.tie_word_embeddings = true;
  c.rms_norm_eps = 1e-5;
  if (size == "15m") {  // 13.8M parameters
    c.hidden_size = 384, c.intermediate_size = 1024, c.num_hidden_layers = 6, c.num_attention_heads = 6;
  } else if (size == "50m") {  // 49.7M parameters
    c.hidden_size = 640, c.intermediate_size = 1728, c.num_hidden_layers = 9, c.num_attention_heads = 10;
  } else {
    std::fprintf(stderr, "train_bench: --size must be 15m or 50m\n");
    std::exit(2);
  }
  c.num_key_value_heads = c.num_attention_heads;
  return c;
}

// Best of a few timed 2048^3 fp32 matmuls: the roofline MFU is measured against.
double matmul_peak_gflops() {
  const int64_t n = 2048;
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);  // warm-up
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    torch::Tensor c = torch::mm(a, b);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string size = "15m";
  int64_t steps = 10, batch = 8, seq = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--size")) size = argv[i + 1];
    else if (!std::strcmp(argv[i], "--steps")) steps = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch")) batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seq")) seq = std::stoll(argv[i + 1]);
  }
  torch::manual_seed(0);
  const gemkit::ModelConfig config = bench_config(size);
  gemkit::Transformer model(config);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(0.0));
  const double peak = matmul_peak_gflops();

  const int64_t warmup = 2;
  double timed = 0;
  float last_loss = 0;
  for (int64_t step = 0; step < warmup + steps; ++step) {
    torch::Tensor ids = torch::randint(config.vocab_size, {batch, seq}, torch::kLong);
    const auto t0 = Clock::now();
    opt.zero_grad();
    gemkit::ModelOutput out = model->forward(ids);
    torch::Tensor loss = model->loss(out, ids);
    loss.backward();
    opt.step();
    last_loss = loss.item<float>();
    if (step >= warmup) timed += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  const double tokens_per_s = double(steps * batch * seq) / timed;
  const double flops_per_token =
      6.0 * double(params) + 12.0 * double(config.num_hidden_layers * seq * config.hidden_size);
  const double gflops = tokens_per_s * flops_per_token / 1e9;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"impl\": \"gemkit\", \"size\": \"%s\", \"params\": %lld, \"batch\": %lld, \"seq\": %lld, \"steps\": %lld, "
      "\"tokens_per_s\": %.1f, \"gflops\": %.1f, \"peak_gflops\": %.1f, \"mfu\": %.3f, \"peak_rss_mb\": %.1f, "
      "\"last_loss\": %.4f}\n",
      size.c_str(), (long long)params, (long long)batch, (long long)seq, (long long)steps, tokens_per_s, gflops, peak,
      gflops / peak, ru.ru_maxrss / 1024.0, last_loss);
  return 0;
}
