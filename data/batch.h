// One batch of token data as the loaders produce it and the trainer and evaluator consume it.
// Torch-free (plain vectors, row-major [rows, seq_len]); train/ turns it into tensors.
#pragma once
#include <cstdint>
#include <vector>

namespace gemkit {

struct TokenBatch {
  int64_t rows = 0;
  int64_t seq_len = 0;
  // [rows * seq_len] token ids; padding positions hold the pad id (or 0).
  std::vector<int32_t> input_ids;
  // [rows * seq_len] loss targets aligned with input_ids, -100 where no loss is taken.
  // Causal LM: the model shifts (position t predicts labels[t + 1]); the first token of every
  // packed document has label -100, so no loss ever spans two documents.
  // Masked LM: the original id at masked positions, -100 elsewhere.
  // Classification: all -100 (see class_labels).
  std::vector<int32_t> labels;
  // [rows * seq_len] 1 for a real token, 0 for padding.
  std::vector<int32_t> attention_mask;
  // [rows * seq_len] index of the packed document within its row (0, 1, 2, ...), -1 for
  // padding. Attention never crosses a segment boundary and positions restart in each one.
  std::vector<int32_t> segment_ids;
  // Per row: the domain id of the row's (first) document, the index of the source it was drawn
  // from when several are mixed (replay of general data is a source), and the class label
  // (classification; -1 otherwise).
  std::vector<int32_t> domain_ids;
  std::vector<int32_t> source_ids;
  std::vector<int32_t> class_labels;

  int64_t tokens() const {  // real (non-padding) tokens
    int64_t n = 0;
    for (int32_t m : attention_mask) n += m;
    return n;
  }
};

}  // namespace gemkit
