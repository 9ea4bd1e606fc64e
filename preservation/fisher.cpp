#include "preservation/fisher.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/file_io.h"
#include "core/sha256.h"
#include "formats/safetensors.h"
#include "model/batch_tensors.h"
#include "model/loss.h"
#include "preservation/teacher.h"
#include "preservation/tensor_file.h"

namespace gemkit {

namespace {

constexpr const char* kFisherFormat = "gemkit-fisher-v1";

// requires_grad=true on every parameter for its lifetime, then each parameter's own flag back.
class AllParametersRequireGrad {
 public:
  explicit AllParametersRequireGrad(std::vector<torch::Tensor> params) : params_(std::move(params)) {
    for (auto& p : params_) {
      flags_.push_back(p.requires_grad());
      p.set_requires_grad(true);
    }
  }
  ~AllParametersRequireGrad() {
    for (size_t i = 0; i < params_.size(); ++i) params_[i].set_requires_grad(flags_[i]);
  }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<bool> flags_;
};

BatchTensors row_of(const BatchTensors& t, int64_t r) {
  auto row = [r](const torch::Tensor& x) { return x.defined() ? x.narrow(0, r, 1) : x; };
  BatchTensors out = t;
  out.input_ids = row(t.input_ids);
  out.labels = row(t.labels);
  out.attention_mask = row(t.attention_mask);
  out.segment_ids = row(t.segment_ids);
  out.class_labels = row(t.class_labels);
  return out;
}

// The logits of one row's positions that carry a prediction target, [N, V] (see fisher.h).
torch::Tensor target_logits(const torch::Tensor& logits, const BatchTensors& row, Head head) {
  switch (head) {
    case Head::CausalLM: {
      const int64_t T = logits.size(1);
      return logits.narrow(1, 0, T - 1).index({row.labels.narrow(1, 1, T - 1) != kIgnoreIndex});
    }
    case Head::MaskedLM:
      return logits.index({row.labels != kIgnoreIndex});
    case Head::SequenceClassification:
      if (row.class_labels.defined() && row.class_labels.item<int64_t>() < 0) return logits.narrow(0, 0, 0);
      return logits;
    default:
      fail("compute_fisher", std::string("the model has no LM or classification head (head ") + head_name(head) + ")");
  }
}

std::map<std::string, torch::Tensor> fisher_of_rows(Transformer model, const std::vector<TokenBatch>& batches,
                                                    const FisherOptions& options, int64_t& rows) {
  if (options.max_sequences < 1)
    fail("FisherOptions.max_sequences", "must be >= 1, got " + std::to_string(options.max_sequences));
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
  for (const auto& p : model->named_parameters()) {
    names.push_back(p.key());
    params.push_back(p.value());
  }
  torch::AutoGradMode grad_mode(true);  // also when called under a NoGradGuard
  AllParametersRequireGrad grads_on(params);
  BaseNetworkScope base(model);
  const torch::Device device = model->device();
  const Head head = model->config().head;
  torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);

  std::vector<torch::Tensor> sums;
  for (const auto& p : params) sums.push_back(torch::zeros(p.sizes(), p.options().dtype(torch::kFloat32)));
  rows = 0;
  for (const TokenBatch& batch : batches) {
    const BatchTensors t = batch_to_tensors(batch, device);
    for (int64_t r = 0; r < batch.rows && rows < options.max_sequences; ++r) {
      const BatchTensors row = row_of(t, r);
      ForwardOptions forward;
      forward.attention_mask = row.attention_mask;
      forward.segment_ids = row.segment_ids;
      const torch::Tensor logits =
          target_logits(model->forward(row.input_ids, forward).logits, row, head).to(torch::kFloat32);
      if (logits.size(0) == 0) continue;
      // Sampled on the CPU from one seeded generator: the same targets on every device.
      const torch::Tensor sampled =
          torch::multinomial(torch::softmax(logits.detach(), -1).to(torch::kCPU), 1, true, generator).to(device);
      const torch::Tensor log_likelihood = torch::log_softmax(logits, -1).gather(1, sampled).mean();
      const auto g = torch::autograd::grad({log_likelihood}, params, {}, /*retain_graph=*/false,
                                           /*create_graph=*/false, /*allow_unused=*/true);
      for (size_t k = 0; k < params.size(); ++k)
        if (g[k].defined()) sums[k] += g[k].to(torch::kFloat32).square();
      ++rows;
    }
    if (rows == options.max_sequences) break;
  }
  if (rows == 0) fail("compute_fisher", "the batches hold no position with a loss target");
  std::map<std::string, torch::Tensor> fisher;
  for (size_t k = 0; k < params.size(); ++k) fisher[names[k]] = sums[k] / double(rows);
  return fisher;
}

// Length-prefixed, so that no two different sequences of fields hash alike.
void hash_bytes(Sha256& h, const void* data, size_t size) {
  const uint64_t n = size;
  h.update(&n, sizeof n);
  h.update(data, size);
}
void hash_text(Sha256& h, const std::string& s) { hash_bytes(h, s.data(), s.size()); }
void hash_ints(Sha256& h, const std::vector<int32_t>& v) { hash_bytes(h, v.data(), v.size() * sizeof(int32_t)); }

// Checks a cached Fisher against the model; throws naming the file and the tensor.
void check_cached_fisher(const std::string& path, const std::map<std::string, torch::Tensor>& fisher,
                         const std::map<std::string, std::string>& metadata, const std::string& key,
                         const Transformer& model) {
  const std::string remedy = "; delete the file to recompute it";
  auto format = metadata.find("format");
  if (format == metadata.end() || format->second != kFisherFormat)
    fail(path, std::string("not a gemkit Fisher file (metadata format is not ") + kFisherFormat + ")" + remedy);
  auto stored_key = metadata.find("key");
  if (stored_key == metadata.end() || stored_key->second != key)
    fail(path, "metadata key does not match the file name's key " + key + remedy);
  const auto params = model->named_parameters();
  for (const auto& p : params) {
    auto it = fisher.find(p.key());
    if (it == fisher.end()) fail(path, "tensor " + p.key() + ": missing (the model has it)" + remedy);
    if (it->second.sizes() != p.value().sizes())
      fail(path, "tensor " + p.key() + ": shape " + shape_text(it->second.sizes().vec()) +
                     " does not match the model's " + shape_text(p.value().sizes().vec()) + remedy);
    if (it->second.scalar_type() != torch::kFloat32)
      fail(path, "tensor " + p.key() + ": expected F32" + remedy);
    if (!torch::isfinite(it->second).all().item<bool>() || (it->second < 0).any().item<bool>())
      fail(path, "tensor " + p.key() + ": values must be finite and >= 0" + remedy);
  }
  for (const auto& [name, tensor] : fisher)
    if (!params.contains(name)) fail(path, "tensor " + name + ": not a parameter of the model" + remedy);
}

}  // namespace

std::map<std::string, torch::Tensor> compute_fisher(Transformer model, const std::vector<TokenBatch>& batches,
                                                    const FisherOptions& options) {
  int64_t rows = 0;
  return fisher_of_rows(std::move(model), batches, options, rows);
}

std::string fisher_cache_key(const Transformer& model, const std::vector<TokenBatch>& batches,
                             const std::vector<std::string>& data_files, const FisherOptions& options) {
  Sha256 h;
  hash_text(h, kFisherFormat);
  hash_text(h, model->config().to_json_text());
  for (const auto& p : model->named_parameters()) {
    const torch::Tensor c = p.value().detach().to(torch::kCPU).contiguous();
    hash_text(h, p.key());
    hash_text(h, std::string(c10::toString(c.scalar_type())) + " " + shape_text(c.sizes().vec()));
    hash_bytes(h, c.data_ptr(), size_t(c.nbytes()));
  }
  for (const std::string& file : data_files) hash_text(h, sha256_file(file));
  for (const TokenBatch& b : batches) {
    hash_text(h, std::to_string(b.rows) + "x" + std::to_string(b.seq_len));
    for (const auto* v : {&b.input_ids, &b.labels, &b.attention_mask, &b.segment_ids, &b.class_labels})
      hash_ints(h, *v);
  }
  hash_text(h, "max_sequences=" + std::to_string(options.max_sequences) + " seed=" + std::to_string(options.seed));
  return h.hex_digest();
}

std::string fisher_cache_path(const std::string& cache_dir, const std::string& key) {
  return (std::filesystem::path(cache_dir) / ("fisher-" + key + ".safetensors")).string();
}

std::map<std::string, torch::Tensor> load_or_compute_fisher(Transformer model, const std::vector<TokenBatch>& batches,
                                                            const std::vector<std::string>& data_files,
                                                            const FisherOptions& options, const std::string& cache_dir) {
  const std::string key = fisher_cache_key(model, batches, data_files, options);
  const std::string path = fisher_cache_path(cache_dir, key);
  if (file_exists(path)) {
    std::map<std::string, std::string> metadata;
    std::map<std::string, torch::Tensor> fisher;
    try {
      fisher = load_named_tensors(path, &metadata);
    } catch (const Error& e) {
      fail("Fisher cache", std::string(e.what()) + "; delete the file to recompute it");
    }
    check_cached_fisher(path, fisher, metadata, key, model);
    for (auto& item : fisher) item.second = item.second.to(model->device());
    std::printf("fisher: read %s\n", path.c_str());
    return fisher;
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t rows = 0;
  std::map<std::string, torch::Tensor> fisher = fisher_of_rows(model, batches, options, rows);
  std::filesystem::create_directories(cache_dir);
  save_named_tensors(path, fisher,
                     {{"format", kFisherFormat},
                      {"key", key},
                      {"sequences", std::to_string(rows)},
                      {"max_sequences", std::to_string(options.max_sequences)},
                      {"seed", std::to_string(options.seed)}});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fisher: computed over %lld sequences in %.1f s, wrote %s\n", (long long)rows, seconds, path.c_str());
  return fisher;
}

}  // namespace gemkit
