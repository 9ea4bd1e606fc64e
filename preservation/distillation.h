// Weighted knowledge distillation (docs/design/gem-method.md §4, L_KD): keeps the adapted model's
// predictions close to the frozen teacher's where the weights say so.
//
//   L_KD = sum_i w_i * T^2 * KL(p_teacher^T(.|i) || p_student^T(.|i)) / sum_i w_i
//
// p^T = softmax(logits / T). The T^2 factor (Hinton et al. 2015) keeps the gradient's size
// independent of T, so lambda_kd means the same thing at every temperature. Weights select and
// scale positions: 1 on replay tokens, the router's "general" probability on domain tokens,
// 0 where nothing is preserved (padding, positions without a target).
#pragma once
#include <torch/torch.h>

namespace gemkit {

// student_logits, teacher_logits [B, T, V] (any float dtype; computed in float32, or float64
// when either input is float64); weights [B, T], >= 0. The teacher and the weights are
// detached: the loss moves only the student (a router is not rewarded for calling tokens
// "domain" to escape distillation). Positions with weight 0 are dropped before the softmax,
// so whatever their logits hold does not matter. When every weight is 0 the result is a zero
// scalar that still depends on student_logits (backward() works and gives zero gradients).
// Throws gemkit::Error for mismatched shapes or temperature <= 0.
torch::Tensor distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                const torch::Tensor& weights, double temperature);

}  // namespace gemkit
