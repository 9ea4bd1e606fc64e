// SCAR's router (docs/design/gem-method.md §3): tokens cross-attend to a small bank of expert keys
// and go to a variable number of experts.
//
//   q_i  = W_q . rmsnorm(x_i)                      [d_r]   (d_r = router_dim, default 64)
//   z_ie = q_i . k_e / (sqrt(d_r) * temperature)   one logit per expert key k_e
//   z_i0 += general_bias                          (SCAR's general expert is expert 0)
//   p_i  = softmax(z_i)
//   chosen: the smallest set of experts, by descending p, whose mass reaches `mass` (tau,
//           default 0.65), at most `max_experts` (k_max, default 2)
//   gates: p renormalised over the chosen set (0 elsewhere)
// A confident token uses one expert, an ambiguous one up to k_max. The gates are differentiable
// in p, so the language-model loss trains W_q and the keys; the choice itself is discrete.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gemkit {

struct ExpertRouterOptions {
  int64_t router_dim = 64;   // d_r
  double temperature = 1.0;
  double mass = 0.65;        // tau: the threshold of the authors' code
  int64_t max_experts = 2;   // k_max
  // Added to expert 0's logit (SCAR: the general expert), a shift of the router's prior in nats:
  // 0 in training; raised at inference so that text the router was not trained on (no domain's
  // and not the replay pool's) falls back to the untouched base path (docs/multi-domain.md).
  double general_bias = 0;
};

// Throws gemkit::Error "ExpertRouterOptions.<field>: ..." for out-of-range values.
void validate(const ExpertRouterOptions& options);

struct ExpertRouting {
  torch::Tensor logits;  // [N, E] z
  torch::Tensor probs;   // [N, E] softmax(z)
  torch::Tensor chosen;  // [N, E] bool
  torch::Tensor gates;   // [N, E] p renormalised over the chosen experts, 0 elsewhere
};

// The variable-k rule on given logits [N, E] (exposed for tests).
ExpertRouting select_by_mass(const torch::Tensor& logits, double mass, int64_t max_experts);

class ExpertRouterImpl : public torch::nn::Module {
 public:
  // Parameters "query" [router_dim, hidden] and "keys" [experts, router_dim]. Initialised so that
  // z starts with unit scale: query ~ N(0, 1/hidden) (rmsnorm(x) has unit RMS), keys ~ N(0, 1),
  // drawn from a generator of its own seeded with `seed` (the global RNG is left alone).
  ExpertRouterImpl(int64_t hidden, int64_t experts, ExpertRouterOptions options, double eps, uint64_t seed);
  // x: [N, hidden] (any dtype; routed in float32 or float64).
  ExpertRouting route(const torch::Tensor& x) const;
  const ExpertRouterOptions& options() const { return options_; }
  void set_general_bias(double bias) { options_.general_bias = bias; }

  torch::Tensor query, keys;

 private:
  ExpertRouterOptions options_;
  double eps_;
};
TORCH_MODULE(ExpertRouter);

}  // namespace gemkit
