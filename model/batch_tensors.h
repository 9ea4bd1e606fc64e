// TokenBatch (torch-free, from the loaders) -> tensors on a device, and the number of loss
// targets a batch carries (what gradient accumulation weights micro-batches by).
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "data/batch.h"
#include "formats/model_config.h"

namespace gemkit {

// The tensors of one micro-batch.
struct BatchTensors {
  torch::Tensor input_ids;       // [B, T] int64
  torch::Tensor labels;          // [B, T] int64, kIgnoreIndex where no loss is taken
  torch::Tensor attention_mask;  // [B, T] int64
  torch::Tensor segment_ids;     // [B, T] int64, -1 on padding; undefined when the loader packs nothing
  torch::Tensor class_labels;    // [B] int64 (classification), else undefined
  torch::Tensor domain_ids;      // [B] int64
  torch::Tensor source_ids;      // [B] int64
};

BatchTensors batch_to_tensors(const TokenBatch& batch, const torch::Device& device);

// How many terms the head's loss averages over: causal LM, labels[:, 1:] != -100 (the model
// shifts); masked LM, labels != -100; classification, rows with a class label.
int64_t loss_target_count(const TokenBatch& batch, Head head);

}  // namespace gemkit
