// Diagonal Fisher information of the base model on general data (docs/design/gem-method.md §4,
// L_EWC): how much each parameter matters to what the base already knows.
//
// The TRUE Fisher, estimated per sequence: for each row of the batches (rows without a loss
// target are skipped) the target at every position that carries one is SAMPLED from the
// model's own predictive distribution (not taken from the data), g = gradient of the mean
// log-likelihood of the sampled targets over that row's positions, and
//   F = mean over rows of g * g     (elementwise).
// The empirical Fisher (data labels) is a different quantity and a worse one away from a
// minimum; sampling is what makes E[g] = 0 and F the curvature of the KL to the base.
//
// Normalisation: g is of the per-token MEAN log-likelihood (as the training loss is a per-token
// mean), and F is a mean over rows, so F does not grow with the number of rows or their length;
// lambda_ewc is set against that scale.
//
// Which positions carry a target, by head: causal LM, position t where labels[t + 1] != -100
// (logits at t predict token t + 1; the loader puts -100 at every document start, so packed
// documents never predict across a boundary); masked LM, labels != -100; classification, one
// class per row (rows with class label < 0 are skipped when class labels are given).
//
// It is the Fisher of the base network: computed inside a BaseNetworkScope (Linear hooks off,
// block wrappers out, eval mode), so adapters attached already do not change it.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/batch.h"
#include "model/transformer.h"

namespace gemkit {

struct FisherOptions {
  int64_t max_sequences = 64;  // rows used, at most (the first ones, in batch order)
  uint64_t seed = 0;           // the CPU generator the targets are sampled with
};

// Parameter name (Hugging Face name, every parameter of the model) -> F, float32, on the
// model's device. Gradients are taken for every parameter whatever its requires_grad, which is
// restored afterwards; the parameters' .grad fields are not touched. Throws gemkit::Error for
// max_sequences < 1, a model without an LM or classification head, or batches without a single
// loss target.
std::map<std::string, torch::Tensor> compute_fisher(Transformer model, const std::vector<TokenBatch>& batches,
                                                    const FisherOptions& options);

// The cache key: sha256 over a format tag, the model config, every parameter's name, dtype,
// shape and bytes, the content (sha256) of each data file, the batches' tokens, labels, masks and
// segments (so loader settings such as seq_len are covered too) and the options.
std::string fisher_cache_key(const Transformer& model, const std::vector<TokenBatch>& batches,
                             const std::vector<std::string>& data_files, const FisherOptions& options);

// Reads <cache_dir>/fisher-<key>.safetensors when present (checked against the model: every
// parameter present with its shape, nothing else, values finite and >= 0; a mismatch or an
// unreadable file is a gemkit::Error naming the file and the tensor), else computes the Fisher
// and writes that file atomically (creating cache_dir). Prints one line saying which.
std::map<std::string, torch::Tensor> load_or_compute_fisher(Transformer model, const std::vector<TokenBatch>& batches,
                                                            const std::vector<std::string>& data_files,
                                                            const FisherOptions& options, const std::string& cache_dir);

// The file load_or_compute_fisher uses for a key.
std::string fisher_cache_path(const std::string& cache_dir, const std::string& key);

}  // namespace gemkit
