#include "preservation/distillation.h"

#include <limits>
#include <string>

#include "core/error.h"
#include "formats/safetensors.h"  // shape_text

namespace gemkit {

static std::string sizes_text(const torch::Tensor& t) { return shape_text(t.sizes().vec()); }

torch::Tensor distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                const torch::Tensor& weights, double temperature) {
  const char* where = "distillation_loss";
  if (!(temperature > 0)) fail(where, "temperature must be > 0, got " + std::to_string(temperature));
  if (student_logits.dim() != 3)
    fail(where, "student logits must be [B, T, V], got " + sizes_text(student_logits));
  if (teacher_logits.sizes() != student_logits.sizes())
    fail(where, "teacher logits " + sizes_text(teacher_logits) + " do not match the student's " +
                    sizes_text(student_logits));
  if (weights.dim() != 2 || weights.size(0) != student_logits.size(0) || weights.size(1) != student_logits.size(1))
    fail(where, "weights " + sizes_text(weights) + " must be [B, T] of the logits " + sizes_text(student_logits));

  // float32 at least: a bf16 softmax over a large vocabulary loses the small probabilities
  // that KL is made of.
  const auto dtype = torch::promote_types(torch::promote_types(student_logits.scalar_type(), torch::kFloat32),
                                          teacher_logits.scalar_type());
  const int64_t V = student_logits.size(2);
  const torch::Tensor w = weights.detach().reshape({-1}).to(dtype);
  // Only positions with a weight: saves the softmax over V where nothing is preserved.
  const torch::Tensor keep = w.nonzero().squeeze(1);
  const torch::Tensor kept_w = w.index_select(0, keep);
  const torch::Tensor s = student_logits.reshape({-1, V}).index_select(0, keep).to(dtype) / temperature;
  const torch::Tensor t = teacher_logits.detach().reshape({-1, V}).index_select(0, keep).to(dtype) / temperature;
  const torch::Tensor log_p_teacher = torch::log_softmax(t, -1);
  const torch::Tensor kl = (log_p_teacher.exp() * (log_p_teacher - torch::log_softmax(s, -1))).sum(-1);
  // With no kept position both sums are 0 and the clamp turns 0/0 into 0 (kl keeps its graph).
  const torch::Tensor total = kept_w.sum().clamp_min(std::numeric_limits<float>::min());
  return (kept_w * kl).sum() * (temperature * temperature) / total;
}

}  // namespace gemkit
