// The one place for LibTorch version differences. gemkit builds against Debian's
// LibTorch 1.13 (CPU) and against a CUDA LibTorch 2.x given by Torch_DIR; any call whose
// name or signature changed between them goes through a function here.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

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

}  // namespace gemkit::compat
