// TokenBatch (torch-free, from the loaders) -> tensors on a device, and the number of loss
// targets a batch carries (what gradient accumulation weights micro-batches by).
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "data/batch.h"
#include "model/model_config.h"
#include "train/loss_terms.h"

namespace gemkit {

BatchTensors batch_to_tensors(const TokenBatch& batch, const torch::Device& device);

// How many terms the head's loss averages over: causal LM, labels[:, 1:] != -100 (the model
// shifts); masked LM, labels != -100; classification, rows with a class label.
int64_t loss_target_count(const TokenBatch& batch, Head head);

}  // namespace gemkit
