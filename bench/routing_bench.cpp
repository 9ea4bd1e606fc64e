// Forward speed of GEM's routing against the same model without it (docs/design/gem-method.md §2-3).
//
//   routing_bench [--model DIR | --size base|50m] [--batch B] [--seq T] [--reps N] [--capacity C]
//                 [--attention-only 1]
//
// Runs, on the same random token batch and in the same process, best of N timed forward passes
// (no gradients, eval mode unless noted) of:
//   dense       the model as it is
//   dtr top-k   the Dynamic Token Router on every block but the first and last, training-mode
//               selection (top ceil(C*T) tokens per sequence; the forward of a training step)
//   dtr thresh  the same routers at inference (gate > 0.5), with the router bias set so that the
//               realised capacity is about C: the rule the deployed model runs
//   scar        SCAR with two domain experts (rank 16) on q/v/gate/up/down of every block
//   gem         DTR (threshold) + SCAR together
// and prints one table line each: ms per forward, tokens/s, speed-up against dense, realised
// capacity. Random weights are fine: the cost does not depend on their values. --attention-only 1
// routes attention only (dtr.attention_only: the MLP runs on every token).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "routing/gem_modules.h"

using namespace gemkit;
using Clock = std::chrono::steady_clock;

namespace {

ModelConfig size_config(const std::string& size) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 4096;
  c.max_position_embeddings = 2048;
  c.tie_word_embeddings = true;
  c.rms_norm_eps = 1e-5;
  if (size == "base") {  // the bundled base model's shape
    c.hidden_size = 256, c.intermediate_size = 688, c.num_hidden_layers = 6, c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
  } else if (size == "50m") {
    c.hidden_size = 640, c.intermediate_size = 1728, c.num_hidden_layers = 9, c.num_attention_heads = 10;
    c.num_key_value_heads = 10;
  } else {
    std::fprintf(stderr, "routing_bench: --size must be base or 50m\n");
    std::exit(2);
  }
  return c;
}

double best_ms(Transformer& m, const torch::Tensor& ids, int reps) {
  torch::NoGradGuard no_grad;
  m->forward(ids);  // warm-up
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    m->forward(ids);
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, size = "base";
  int64_t batch = 4, seq = 512;
  int reps = 5;
  double capacity = 0.5;
  bool attention_only = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_dir = v;
    else if (k == "--size") size = v;
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--seq") seq = std::stoll(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--capacity") capacity = std::stod(v);
    else if (k == "--attention-only") attention_only = v == "1";
    else {
      std::fprintf(stderr, "routing_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  torch::manual_seed(0);
  Transformer model{nullptr};
  if (!model_dir.empty()) model = load_pretrained(model_dir, torch::kCPU).model;
  else model = Transformer(size_config(size));
  model->eval();
  const ModelConfig& c = model->config();
  const auto ids = torch::randint(c.vocab_size, {batch, seq});
  const double tokens = double(batch * seq);
  std::vector<int64_t> inner;
  for (int64_t i = 1; i + 1 < model->num_blocks(); ++i) inner.push_back(i);

  std::printf("model: %s, %lld blocks x %lld, batch %lld x seq %lld, torch threads %d, best of %d%s\n",
              model_dir.empty() ? size.c_str() : model_dir.c_str(), (long long)c.num_hidden_layers,
              (long long)c.hidden_size, (long long)batch, (long long)seq, torch::get_num_threads(), reps,
              attention_only ? ", DTR routes attention only" : "");
  std::printf("| variant | ms / forward | tokens/s | speed-up | realised capacity |\n|---|---|---|---|---|\n");
  const double dense = best_ms(model, ids, reps);
  auto line = [&](const char* name, double ms, double realised) {
    std::printf("| %s | %.1f | %.0f | %.2fx | %s |\n", name, ms, tokens / ms * 1000.0, dense / ms,
                realised < 0 ? "-" : std::to_string(realised).substr(0, 5).c_str());
  };
  line("dense", dense, -1);

  auto dtr_config = [&] {
    GemConfig g;
    g.dtr = true;
    g.dtr_blocks = inner;
    g.dtr_options.capacity = capacity;
    g.dtr_options.attention_only = attention_only;
    return g;
  };
  {
    GemModules gem(model, dtr_config());
    model->train();  // top-k selection; still no gradients
    const double ms = best_ms(model, ids, reps);
    line("dtr top-k (training rule)", ms, gem.metrics().at("dtr/realised_capacity"));
    model->eval();
  }
  // Threshold rule: random router weights, and each router's bias found by bisection so that
  // the share of tokens with gate > 0.5 is about C on this batch.
  auto set_threshold_bias = [&](GemModules& gem) {
    torch::NoGradGuard no_grad;
    const auto& routers = (*gem.dtr())->routers();
    std::vector<double> lo(routers.size(), -20.0), hi(routers.size(), 20.0);
    for (auto& r : routers) r->weight.normal_(0.0, 1.0);
    for (int it = 0; it < 16; ++it) {
      for (size_t k = 0; k < routers.size(); ++k) routers[k]->bias.fill_((lo[k] + hi[k]) / 2);
      model->forward(ids);
      for (size_t k = 0; k < routers.size(); ++k)
        (routers[k]->stats().realised_capacity > capacity ? hi[k] : lo[k]) = (lo[k] + hi[k]) / 2;
    }
  };
  {
    GemModules gem(model, dtr_config());
    set_threshold_bias(gem);
    gem.metrics();
    const double ms = best_ms(model, ids, reps);
    line("dtr threshold (inference rule)", ms, gem.metrics().at("dtr/realised_capacity"));
  }
  GemConfig scar_config;
  scar_config.scar = true;
  scar_config.scar_options.experts = {"law", "finance"};
  scar_config.scar_options.rank = 16;
  {
    GemModules gem(model, scar_config);
    const double ms = best_ms(model, ids, reps);
    char buf[32];
    std::snprintf(buf, sizeof buf, "scar (%.2f experts/token)", gem.metrics().at("scar/experts_per_token"));
    line(buf, ms, -1);
  }
  {
    GemConfig g = dtr_config();
    g.scar = true;
    g.scar_options = scar_config.scar_options;
    GemModules gem(model, g);
    set_threshold_bias(gem);
    gem.metrics();
    const double ms = best_ms(model, ids, reps);
    line("gem: dtr threshold + scar", ms, gem.metrics().at("dtr/realised_capacity"));
  }
  return 0;
}
