#include "model/chunked_loss.h"

#include "core/error.h"
#include "model/loss.h"

namespace gemkit {

namespace {

// One pass over the chunks: the summed loss, and when asked the gradients of the mean loss
// (d/dlogits = (softmax - onehot) / N on the counted rows).
struct Pass {
  torch::Tensor loss;        // scalar, fp32
  torch::Tensor grad_x, grad_weight;  // undefined when not asked
};

Pass chunked_pass(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& labels, int64_t chunk,
                  bool want_grad_x, bool want_grad_weight) {
  const int64_t N = x.size(0);
  const torch::Tensor counted = labels != kIgnoreIndex;
  const double n = counted.sum().item<double>();
  const auto f32 = x.options().dtype(torch::kFloat32);
  Pass p;
  p.loss = torch::zeros({}, f32);
  if (want_grad_x) p.grad_x = torch::empty_like(x);
  if (want_grad_weight) p.grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32));
  for (int64_t begin = 0; begin < N; begin += chunk) {
    const int64_t rows = std::min(chunk, N - begin);
    const torch::Tensor xc = x.narrow(0, begin, rows);
    const torch::Tensor keep = counted.narrow(0, begin, rows);
    // Ignored rows pick class 0 and are then multiplied by 0.
    const torch::Tensor target = labels.narrow(0, begin, rows).masked_fill(~keep, 0).unsqueeze(1);
    torch::Tensor logits = torch::matmul(xc, weight.t()).to(torch::kFloat32);  // [rows, V]
    const torch::Tensor lse = torch::logsumexp(logits, 1, /*keepdim=*/true);
    const torch::Tensor picked = logits.gather(1, target);
    p.loss += ((lse - picked).squeeze(1) * keep).sum();
    if (!want_grad_x && !want_grad_weight) continue;
    // In place from here: the logits become the gradient of the mean loss.
    torch::Tensor& g = logits;
    g.sub_(lse).exp_();
    g.scatter_add_(1, target, -torch::ones_like(picked));
    g.mul_(keep.unsqueeze(1).to(torch::kFloat32) / n);
    if (want_grad_x) p.grad_x.narrow(0, begin, rows).copy_(torch::matmul(g.to(weight.scalar_type()), weight));
    if (want_grad_weight) p.grad_weight.add_(torch::matmul(g.t().to(xc.scalar_type()), xc));
  }
  p.loss /= n;
  return p;
}

struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& labels, int64_t chunk, bool grad_x, bool grad_weight) {
    Pass p = chunked_pass(x, weight, labels, chunk, grad_x, grad_weight);
    ctx->saved_data["grad_x"] = p.grad_x;
    ctx->saved_data["grad_weight"] = grad_weight ? p.grad_weight.to(weight.scalar_type()) : p.grad_weight;
    return p.loss;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list out) {
    const torch::Tensor g = out[0];
    torch::Tensor gx = ctx->saved_data["grad_x"].toTensor(), gw = ctx->saved_data["grad_weight"].toTensor();
    return {gx.defined() ? gx * g : gx, gw.defined() ? gw * g : gw, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor chunked_cross_entropy(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& labels,
                                    int64_t chunk_rows) {
  if (x.dim() != 2 || weight.dim() != 2 || x.size(1) != weight.size(1) || labels.dim() != 1 || labels.size(0) != x.size(0))
    fail("chunked_cross_entropy", "expected x [N, H], weight [V, H], labels [N]");
  if (chunk_rows <= 0) fail("chunked_cross_entropy", "chunk_rows must be positive");
  const torch::Tensor l = labels.to(torch::kInt64);
  const bool grad = torch::GradMode::is_enabled();
  const bool grad_x = grad && x.requires_grad(), grad_weight = grad && weight.requires_grad();
  if (!grad_x && !grad_weight) {
    torch::NoGradGuard no_grad;
    return chunked_pass(x, weight, l, chunk_rows, false, false).loss;
  }
  return ChunkedCrossEntropy::apply(x, weight, l, chunk_rows, grad_x, grad_weight);
}

}  // namespace gemkit
