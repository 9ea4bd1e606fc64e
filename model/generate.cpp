#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"

namespace gemkit {

// A uniform double in [0, 1) from the top 53 bits: the same on every platform (the standard
// distributions are implementation-defined).
static double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

static int64_t argmax(const float* logits, int64_t vocab) {
  return static_cast<int64_t>(std::max_element(logits, logits + vocab) - logits);
}

int64_t select_token(const float* logits, int64_t vocab, const GenerationConfig& config,
                     std::mt19937_64& rng) {
  if (!config.do_sample) return argmax(logits, vocab);

  // Candidates sorted by logit, descending (ties: lower id first, like argmax).
  std::vector<int64_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  size_t keep = order.size();
  if (config.top_k > 0) keep = std::min(keep, static_cast<size_t>(config.top_k));

  // Softmax at the temperature over the top-k candidates.
  const double max_logit = logits[order[0]];
  std::vector<double> probs(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((logits[order[i]] - max_logit) / config.temperature);
    total += probs[i];
  }
  // Top-p: the smallest prefix whose mass reaches top_p (the most likely token always stays).
  if (config.top_p < 1.0) {
    double mass = 0;
    size_t n = 0;
    while (n < keep) {
      mass += probs[n] / total;
      ++n;
      if (mass >= config.top_p) break;
    }
    keep = n;
    total = std::accumulate(probs.begin(), probs.begin() + static_cast<long>(keep), 0.0);
  }
  const double u = uniform01(rng) * total;
  double cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs[i];
    if (u < cumulative) return order[i];
  }
  return order[keep - 1];  // rounding left u at the very top
}

static void check_config(const TransformerImpl& model, const GenerationConfig& c) {
  if (model.config().family != Family::Decoder || model.config().head != Head::CausalLM)
    fail("generate", "needs a decoder with a causal-LM head");
  if (c.max_new_tokens < 0) fail("generate.max_new_tokens", "must not be negative");
  if (c.do_sample && !(c.temperature > 0)) fail("generate.temperature", "must be positive");
  if (c.top_k < 0) fail("generate.top_k", "must not be negative");
  if (!(c.top_p > 0 && c.top_p <= 1)) fail("generate.top_p", "must be in (0, 1]");
}

std::vector<std::vector<int64_t>> generate(Transformer& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationConfig& config,
                                           const TokenCallback& on_token) {
  check_config(*model, config);
  const ModelConfig& mc = model->config();
  const int64_t B = static_cast<int64_t>(prompts.size());
  std::vector<std::vector<int64_t>> outputs(prompts.size());
  if (B == 0 || config.max_new_tokens == 0) return outputs;

  std::vector<int64_t> stops = config.stop_token_ids;
  if (stops.empty() && mc.eos_token_id >= 0) stops.push_back(mc.eos_token_id);
  const int64_t pad = config.pad_token_id >= 0 ? config.pad_token_id
                                               : (mc.pad_token_id >= 0 ? mc.pad_token_id : 0);

  // Left-pad the prompts into one batch; the mask marks the padding.
  size_t longest = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].empty()) fail("generate", "prompt " + std::to_string(b) + " is empty");
    longest = std::max(longest, prompts[b].size());
  }
  const int64_t T = static_cast<int64_t>(longest);
  std::vector<int64_t> ids(static_cast<size_t>(B * T), pad), mask(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    const int64_t offset = T - static_cast<int64_t>(p.size());
    for (size_t t = 0; t < p.size(); ++t) {
      ids[static_cast<size_t>(b * T + offset) + t] = p[t];
      mask[static_cast<size_t>(b * T + offset) + t] = 1;
    }
  }

  torch::NoGradGuard no_grad;
  const torch::Device device = model->device();
  auto cpu_long = torch::TensorOptions().dtype(torch::kInt64);
  auto input = torch::from_blob(ids.data(), {B, T}, cpu_long).clone().to(device);
  auto input_mask = torch::from_blob(mask.data(), {B, T}, cpu_long).clone().to(device);
  const bool padded = std::count(mask.begin(), mask.end(), 0) > 0;

  KVCache cache = model->make_cache();
  ForwardOptions options;
  options.cache = &cache;
  options.last_token_logits_only = true;
  if (padded) options.attention_mask = input_mask;

  std::mt19937_64 rng(config.seed);
  std::vector<bool> done(static_cast<size_t>(B), false);
  int64_t running = B;
  for (int64_t step = 0; step < config.max_new_tokens && running > 0; ++step) {
    auto logits = model->forward(input, options).logits.select(1, 0);  // [B, V]
    logits = logits.to(torch::kCPU, torch::kFloat32).contiguous();
    const int64_t V = logits.size(1);
    const float* rows = logits.data_ptr<float>();

    std::vector<int64_t> next(static_cast<size_t>(B), pad);
    for (int64_t b = 0; b < B; ++b) {
      if (done[static_cast<size_t>(b)]) continue;  // finished rows are fed padding, ignored
      const int64_t token = select_token(rows + b * V, V, config, rng);
      next[static_cast<size_t>(b)] = token;
      outputs[static_cast<size_t>(b)].push_back(token);
      const bool stop = std::find(stops.begin(), stops.end(), token) != stops.end();
      const bool keep_going = on_token ? on_token(b, token) : true;
      if (stop || !keep_going) {
        done[static_cast<size_t>(b)] = true;
        --running;
      }
    }
    // Feed the chosen tokens. Every new token is real (finished rows' outputs are unused), so
    // the mask of the step is only needed to carry the prompt padding, which the cache holds.
    input = torch::from_blob(next.data(), {B, 1}, cpu_long).clone().to(device);
    options.attention_mask = torch::Tensor();
  }
  return outputs;
}

std::vector<int64_t> generate(Transformer& model, const std::vector<int64_t>& prompt,
                              const GenerationConfig& config, const TokenCallback& on_token) {
  return generate(model, std::vector<std::vector<int64_t>>{prompt}, config, on_token).front();
}

}  // namespace gemkit
