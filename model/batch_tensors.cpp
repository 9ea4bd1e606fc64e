#include "model/batch_tensors.h"

#include <string>
#include <vector>

#include "core/error.h"

namespace gemkit {
namespace {

torch::Tensor to_int64(const std::vector<int32_t>& v, std::vector<int64_t> shape, const char* field,
                       const torch::Device& device) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (int64_t(v.size()) != n)
    fail(std::string("TokenBatch.") + field,
         "expected " + std::to_string(n) + " values, got " + std::to_string(v.size()));
  return torch::from_blob(const_cast<int32_t*>(v.data()), shape, torch::kInt32).to(device, torch::kInt64);
}

}  // namespace

BatchTensors batch_to_tensors(const TokenBatch& b, const torch::Device& device) {
  BatchTensors t;
  t.input_ids = to_int64(b.input_ids, {b.rows, b.seq_len}, "input_ids", device);
  t.labels = to_int64(b.labels, {b.rows, b.seq_len}, "labels", device);
  t.attention_mask = to_int64(b.attention_mask, {b.rows, b.seq_len}, "attention_mask", device);
  if (!b.segment_ids.empty()) t.segment_ids = to_int64(b.segment_ids, {b.rows, b.seq_len}, "segment_ids", device);
  if (!b.class_labels.empty()) t.class_labels = to_int64(b.class_labels, {b.rows}, "class_labels", device);
  if (!b.domain_ids.empty()) t.domain_ids = to_int64(b.domain_ids, {b.rows}, "domain_ids", device);
  if (!b.source_ids.empty()) t.source_ids = to_int64(b.source_ids, {b.rows}, "source_ids", device);
  return t;
}

int64_t loss_target_count(const TokenBatch& b, Head head) {
  int64_t n = 0;
  if (head == Head::SequenceClassification) {
    for (int32_t c : b.class_labels) n += c >= 0;
    return n;
  }
  for (int64_t r = 0; r < b.rows; ++r)
    for (int64_t t = head == Head::CausalLM ? 1 : 0; t < b.seq_len; ++t)
      n += b.labels[size_t(r * b.seq_len + t)] != -100;
  return n;
}

}  // namespace gemkit
