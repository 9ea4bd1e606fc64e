// Cross-entropy of a linear output layer without its logits: softmax(x W^T) over a large
// vocabulary, taken in chunks of rows so that no more than `chunk_rows` x vocab logits exist
// at once. The gradients with respect to x and W are computed chunk by chunk in the forward
// pass (the loss is a scalar, so they are known there) and scaled by the incoming gradient in
// the backward pass; neither the full logits nor their gradient is ever held. For SmolLM2
// (vocabulary 49,152) at batch 8 x 256 that is 400 MB per fp32 copy saved, several copies in
// the plain path (logits, log-softmax, their gradient).
//
// Under autocast (bf16 mixed precision) the chunk products run in bf16; the softmax, the loss
// and the accumulated gradients stay fp32.
#pragma once
#include <torch/torch.h>

namespace gemkit {

// x [N, H], weight [V, H], labels [N] (kIgnoreIndex rows count for nothing): the mean over the
// other rows of -log softmax(x W^T)[label], as F::cross_entropy(x W^T, labels) (NaN when every
// row is ignored). Differentiable in x and weight.
torch::Tensor chunked_cross_entropy(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& labels,
                                    int64_t chunk_rows);

}  // namespace gemkit
