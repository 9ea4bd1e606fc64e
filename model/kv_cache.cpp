#include "model/kv_cache.h"

#include <string>

#include "core/error.h"

namespace gemkit {

// Writes `src` at [length, length + n) of `buf` along `dim`, growing `buf` by doubling.
static void append_along(torch::Tensor& buf, const torch::Tensor& src, int64_t dim, int64_t length) {
  const int64_t n = src.size(dim);
  if (torch::GradMode::is_enabled()) {  // autograd-safe path (see header)
    buf = length == 0 ? src : torch::cat({buf.narrow(dim, 0, length), src}, dim);
    return;
  }
  if (!buf.defined() || buf.size(dim) < length + n || buf.requires_grad()) {
    auto sizes = src.sizes().vec();
    sizes[dim] = std::max<int64_t>(2 * (length + n), 16);
    auto grown = torch::empty(sizes, src.options());
    if (length > 0) grown.narrow(dim, 0, length).copy_(buf.narrow(dim, 0, length));
    buf = grown;
  }
  buf.narrow(dim, length, n).copy_(src);
}

void LayerKV::append(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& positions,
                     const torch::Tensor& valid) {
  if (length_ > 0 && k.size(0) != k_.size(0))
    fail("KVCache", "batch size changed from " + std::to_string(k_.size(0)) + " to " +
                        std::to_string(k.size(0)) + "; clear() the cache first");
  append_along(k_, k, 2, length_);
  append_along(v_, v, 2, length_);
  append_along(positions_, positions, 1, length_);
  append_along(valid_, valid, 1, length_);
  length_ += k.size(2);
}

torch::Tensor LayerKV::keys() const { return k_.narrow(2, 0, length_); }
torch::Tensor LayerKV::values() const { return v_.narrow(2, 0, length_); }
torch::Tensor LayerKV::key_positions() const { return positions_.narrow(1, 0, length_); }
torch::Tensor LayerKV::key_valid() const { return valid_.narrow(1, 0, length_); }

void LayerKV::clear() {
  k_ = v_ = positions_ = valid_ = torch::Tensor();
  length_ = 0;
}

void LayerKV::repeat_batch(int64_t n) {
  if (length_ == 0) return;  // a routed layer that has seen no token yet
  k_ = keys().repeat_interleave(n, 0);
  v_ = values().repeat_interleave(n, 0);
  positions_ = key_positions().repeat_interleave(n, 0);
  valid_ = key_valid().repeat_interleave(n, 0);
}

KVCache::KVCache(int64_t num_layers) : layers_(static_cast<size_t>(num_layers)) {}

LayerKV& KVCache::layer(int64_t i) {
  if (i < 0 || i >= num_layers())
    fail("KVCache", "layer " + std::to_string(i) + " out of range (" + std::to_string(num_layers()) +
                        " layers)");
  return layers_[static_cast<size_t>(i)];
}

void KVCache::advance(const torch::Tensor& valid) {
  auto added = valid.to(torch::kInt64).sum(1);
  next_positions_ = next_positions_.defined() ? next_positions_ + added : added;
  length_ += valid.size(1);
}

void KVCache::repeat_batch(int64_t n) {
  if (n < 1) fail("KVCache::repeat_batch", "n must be at least 1, got " + std::to_string(n));
  for (auto& l : layers_) l.repeat_batch(n);
  if (next_positions_.defined()) next_positions_ = next_positions_.repeat_interleave(n, 0);
}

void KVCache::clear() {
  for (auto& l : layers_) l.clear();
  length_ = 0;
  next_positions_ = torch::Tensor();
}

}  // namespace gemkit
