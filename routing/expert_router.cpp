#include "routing/expert_router.h"

#include <cmath>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"

namespace gemkit {

void validate(const ExpertRouterOptions& o) {
  if (o.router_dim < 1) fail("ExpertRouterOptions.router_dim", "must be >= 1, got " + std::to_string(o.router_dim));
  if (!(o.temperature > 0)) fail("ExpertRouterOptions.temperature", "must be > 0");
  if (!(o.mass > 0 && o.mass <= 1)) fail("ExpertRouterOptions.mass", "must be in (0, 1], got " + std::to_string(o.mass));
  if (o.max_experts < 1) fail("ExpertRouterOptions.max_experts", "must be >= 1, got " + std::to_string(o.max_experts));
  if (!std::isfinite(o.general_bias)) fail("ExpertRouterOptions.general_bias", "must be finite");
}

ExpertRouting select_by_mass(const torch::Tensor& logits, double mass, int64_t max_experts) {
  ExpertRouting r;
  r.logits = logits;
  r.probs = torch::softmax(logits, -1);
  auto [sorted, order] = r.probs.detach().sort(-1, /*descending=*/true);
  // Expert at rank j is taken while the mass of the experts ranked before it is still below
  // tau: the first always is, and the set stops as soon as it reaches tau.
  auto before = sorted.cumsum(-1) - sorted;
  auto rank = torch::arange(logits.size(-1), order.options()).expand_as(order);
  auto keep = (before < mass) & (rank < max_experts);
  r.chosen = torch::zeros_like(keep).scatter(-1, order, keep);
  auto kept = r.probs * r.chosen.to(r.probs.scalar_type());
  r.gates = kept / kept.sum(-1, /*keepdim=*/true);
  return r;
}

ExpertRouterImpl::ExpertRouterImpl(int64_t hidden, int64_t experts, ExpertRouterOptions options, double eps,
                                   uint64_t seed)
    : options_(options), eps_(eps) {
  validate(options_);
  if (experts < 1) fail("ExpertRouter", "needs at least one expert");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  query = register_parameter("query", at::randn({options_.router_dim, hidden}, gen) / std::sqrt(double(hidden)));
  keys = register_parameter("keys", at::randn({experts, options_.router_dim}, gen));
}

ExpertRouting ExpertRouterImpl::route(const torch::Tensor& x) const {
  auto dtype = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto n = x.to(dtype);
  n = n * torch::rsqrt(n.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  auto q = torch::matmul(n, query.to(dtype).t());
  auto z = torch::matmul(q, keys.to(dtype).t()) /
           (std::sqrt(double(options_.router_dim)) * options_.temperature);
  if (options_.general_bias != 0) {
    auto bias = torch::zeros({z.size(1)}, z.options());
    bias[0] = options_.general_bias;
    z = z + bias;
  }
  return select_by_mass(z, options_.mass, options_.max_experts);
}

}  // namespace gemkit
