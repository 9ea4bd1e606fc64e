// The one place for LibTorch version differences. gemkit builds against Debian's
// LibTorch 1.13 (CPU) and against a CUDA LibTorch 2.x given by Torch_DIR; any call whose
// name or signature changed between them goes through a function here.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <sstream>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace gemkit::compat {

// softmax(q k^T / sqrt(d) + mask) v. `mask` is additive (float, 0 or -inf) or empty.
// 1.13 only has the private at::_scaled_dot_product_attention (returns a tuple);
// 2.x has the public at::scaled_dot_product_attention.
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v,
                                                  const c10::optional<torch::Tensor>& mask,
                                                  bool is_causal) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, is_causal);
#else
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, mask, 0.0, false, is_causal));
#endif
}

// Parses the user's --device choice. CUDA code paths compile everywhere; asking for
// cuda where no GPU or no CUDA build exists is a clear error, not a crash.
inline torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      fail("--device " + name,
           "CUDA is not available (this LibTorch build has no CUDA or no GPU is visible); use cpu");
    return torch::Device(name);
  }
  fail("--device " + name, "expected cpu, cuda or cuda:N");
}

// The key of a parameter in a torch::optim optimizer's state map: 1.13 keys it by the printed
// address of the parameter's TensorImpl (c10::guts::to_string, gone in 2.x), 2.x by the
// address itself. `StateMap` is the optimizer's state() type.
template <class StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap&, const torch::Tensor& parameter) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << parameter.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

inline std::string torch_version() { return TORCH_VERSION; }

// Whether this CPU multiplies bf16 natively: AVX512_BF16 (CPUID leaf 7 subleaf 1, EAX bit 5)
// or AMX-BF16 (leaf 7 subleaf 0, EDX bit 22). Elsewhere bf16 arithmetic is emulated and slower
// than fp32, so bf16 mixed precision is refused there.
inline bool cpu_has_native_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5))) return true;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22))) return true;
#endif
  return false;
}

// Autocast on `device` for the scope (mixed precision: matrix products in `dtype`, reductions,
// norms and losses in fp32, the weights and optimizer state fp32), the previous state restored
// after. Disabled: does nothing. 1.13 has per-device functions, 2.x takes the device type.
class AutocastScope {
 public:
  AutocastScope(torch::Device device, bool enabled, at::ScalarType dtype = at::kBFloat16)
      : type_(device.type()), enabled_(enabled) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR >= 2
    was_enabled_ = at::autocast::is_autocast_enabled(type_);
    was_dtype_ = at::autocast::get_autocast_dtype(type_);
    at::autocast::set_autocast_enabled(type_, true);
    at::autocast::set_autocast_dtype(type_, dtype);
#else
    const bool cpu = type_ == c10::DeviceType::CPU;
    was_enabled_ = cpu ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
    was_dtype_ = cpu ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
    cpu ? at::autocast::set_cpu_enabled(true) : at::autocast::set_enabled(true);
    cpu ? at::autocast::set_autocast_cpu_dtype(dtype) : at::autocast::set_autocast_gpu_dtype(dtype);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    // The cast weights are cached while any scope is open; the outermost one frees them.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR >= 2
    at::autocast::set_autocast_enabled(type_, was_enabled_);
    at::autocast::set_autocast_dtype(type_, was_dtype_);
#else
    const bool cpu = type_ == c10::DeviceType::CPU;
    cpu ? at::autocast::set_cpu_enabled(was_enabled_) : at::autocast::set_enabled(was_enabled_);
    cpu ? at::autocast::set_autocast_cpu_dtype(was_dtype_) : at::autocast::set_autocast_gpu_dtype(was_dtype_);
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type_;
  bool enabled_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

}  // namespace gemkit::compat
