// Data-parallel training over c10d (torchrun-style environment, gradient averaging).
//
// LibTorch 1.13 has no C++ DistributedDataParallel (and c10d/reducer.hpp does not compile
// with Debian's headers, docs/design/toolchain.md), so gemkit does what DDP does in its simplest form:
// after backward, every rank flattens its gradients into one buffer, all-reduces it (sum),
// divides by the world size and copies the result back. With a mean-reduced loss per rank and
// equal per-rank batch sizes this is exactly the gradient of the combined batch's mean loss,
// so N ranks taking the same optimizer step stay bit-for-bit in sync (parameters are
// broadcast from rank 0 once at the start).
//
// Backend: ProcessGroupGloo (CPU tensors; also works for CUDA tensors through host copies).
// Where LibTorch is built with NCCL (the macro USE_C10D_NCCL, set by CMake when
// GEMKIT_USE_NCCL is ON), backend "nccl" (the default for CUDA parameters there) is used for
// CUDA tensors; on CPU builds that code compiles away.
//
// Rendezvous: a c10d TCPStore at MASTER_ADDR:MASTER_PORT, served by rank 0. Every wait has a
// timeout, so a missing peer is an error, not a hang.
//
// Convention for the trainer: only rank 0 (is_main()) writes checkpoints, logs and metrics;
// every rank runs the same steps on its own shard of the data.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gemkit {

struct DistributedOptions {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // "gloo", "nccl" (only where built with NCCL) or "auto" (nccl for CUDA tensors when
  // available, gloo otherwise).
  std::string backend = "auto";
  // Rendezvous and collective timeout.
  std::chrono::milliseconds timeout{60000};
};

class Distributed {
 public:
  // Disabled (world size 1): every collective is a no-op / identity.
  Distributed();
  ~Distributed();
  Distributed(Distributed&&) noexcept;
  Distributed& operator=(Distributed&&) noexcept;
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  // torchrun's variables: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK (optional,
  // default 0). WORLD_SIZE unset or 1: disabled, nothing else is read. Otherwise every
  // variable must be present and valid (gemkit::Error naming the variable).
  // GEMKIT_DIST_BACKEND and GEMKIT_DIST_TIMEOUT_S override backend and timeout.
  static Distributed from_env();
  // Joins the group described by `options` (world_size 1: disabled). Throws gemkit::Error
  // when the rendezvous fails or times out.
  static Distributed create(const DistributedOptions& options);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  bool enabled() const { return world_size_ > 1; }
  bool is_main() const { return rank_ == 0; }
  const std::string& backend() const { return backend_; }

  // Averages the .grad() of `params` over ranks in place (flatten, sum-allreduce, divide,
  // unflatten; one buffer per dtype/device). Every rank must pass the same parameters in the
  // same order (the same model). Parameters with requires_grad false are skipped. A trainable
  // parameter without a gradient on this rank (unused in its forward, e.g. an expert no local
  // token was routed to) counts as zeros; if no rank has a gradient for it, it stays undefined.
  void average_gradients(const std::vector<at::Tensor>& params);
  // Overwrites `params` (data, not grads) on every rank with root's values.
  void broadcast_parameters(const std::vector<at::Tensor>& params, int root = 0);
  // Mean of a scalar over ranks (losses, metrics for logging).
  double all_reduce_mean(double value);
  // Sum of a scalar over ranks (token counts).
  double all_reduce_sum(double value);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  std::string backend_ = "none";
};

}  // namespace gemkit
