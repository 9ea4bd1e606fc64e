#include "train/distributed.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <map>
#include <tuple>

#include "core/error.h"

#ifndef USE_C10D_GLOO
#error "distributed.cpp needs USE_C10D_GLOO (set by train/CMakeLists.txt) to see ProcessGroupGloo"
#endif

namespace gemkit {

namespace {

const std::string kWhere = "distributed";

// The environment variable `name` as an integer in [lo, hi]; gemkit::Error naming it otherwise.
int env_int(const char* name, int lo, int hi, const int* fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    if (fallback) return *fallback;
    fail(name, "environment variable not set (torchrun sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)");
  }
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi)
    fail(name, std::string("expected an integer in [") + std::to_string(lo) + ", " + std::to_string(hi) +
                   "], got \"" + v + "\"");
  return static_cast<int>(x);
}

// An exception's message without the C++ backtrace that c10::Error appends on later lines.
std::string reason(const std::exception& e) {
  const std::string what = e.what();
  return what.substr(0, what.find('\n'));
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  std::chrono::milliseconds timeout{60000};
  int rank = 0, world_size = 1;
  std::string store_address;  // MASTER_ADDR:MASTER_PORT, for errors
  // Collectives this rank has entered, published in the store as "progress/RANK" before each
  // one, so that when a collective fails the survivors can say which rank fell behind (a rank
  // killed or stalled between collectives never publishes the one the others wait in).
  int64_t entered = 0;

  void publish_progress() {
    ++entered;
    const std::string text = std::to_string(entered);
    store->set("progress/" + std::to_string(rank), std::vector<uint8_t>(text.begin(), text.end()));
  }

  // Why a collective failed, from the other ranks' progress: "rank 1 stopped or stalled (its
  // last collective: 7; this rank: 8)", or that the store (served by rank 0) is gone.
  std::string diagnose() {
    std::string behind;
    try {
      store->setTimeout(std::chrono::seconds(2));
      for (int r = 0; r < world_size; ++r) {
        if (r == rank) continue;
        const std::string key = "progress/" + std::to_string(r);
        int64_t theirs = 0;
        if (store->check({key})) {
          const std::vector<uint8_t> v = store->get(key);
          theirs = std::stoll(std::string(v.begin(), v.end()));
        }
        if (theirs < entered)
          behind += (behind.empty() ? "" : ", ") + std::string("rank ") + std::to_string(r) +
                    " stopped or stalled (its last collective: " + std::to_string(theirs) + ")";
      }
    } catch (const std::exception&) {
      return "the rendezvous store at " + store_address + ", served by rank 0, is unreachable: rank 0 stopped";
    }
    if (behind.empty())
      return "every rank entered collective " + std::to_string(entered) + "; the transport failed";
    return behind + "; this rank waited in collective " + std::to_string(entered);
  }

  // Runs a collective on the backend that owns `t`'s device; Gloo gets CPU tensors (a CUDA
  // tensor goes through a host copy when there is no NCCL group).
  template <class Op>
  void run(at::Tensor& t, const Op& op) {
    publish_progress();
#ifdef USE_C10D_NCCL
    if (nccl && t.is_cuda()) {
      std::vector<at::Tensor> ts{t};
      op(*nccl, ts)->wait(timeout);
      return;
    }
#endif
    if (t.is_cpu()) {
      std::vector<at::Tensor> ts{t};
      op(*gloo, ts)->wait(timeout);
      return;
    }
    std::vector<at::Tensor> ts{t.to(torch::kCPU)};
    op(*gloo, ts)->wait(timeout);
    t.copy_(ts[0]);
  }

  void allreduce_sum(at::Tensor& t) {
    run(t, [](auto& pg, std::vector<at::Tensor>& ts) { return pg.allreduce(ts); });
  }
  void broadcast(at::Tensor& t, int root) {
    run(t, [root](auto& pg, std::vector<at::Tensor>& ts) {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      return pg.broadcast(ts, o);
    });
  }
};

Distributed::Distributed() = default;
Distributed::~Distributed() = default;
Distributed::Distributed(Distributed&&) noexcept = default;
Distributed& Distributed::operator=(Distributed&&) noexcept = default;

Distributed Distributed::from_env() {
  const int one = 1;
  DistributedOptions o;
  o.world_size = env_int("WORLD_SIZE", 1, 1 << 20, &one);
  if (o.world_size == 1) return Distributed();
  o.rank = env_int("RANK", 0, o.world_size - 1, nullptr);
  const int zero = 0;
  o.local_rank = env_int("LOCAL_RANK", 0, o.world_size - 1, &zero);
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr || !*addr) fail("MASTER_ADDR", "environment variable not set (the address of rank 0)");
  o.master_addr = addr;
  o.master_port = env_int("MASTER_PORT", 1, 65535, nullptr);
  if (const char* b = std::getenv("GEMKIT_DIST_BACKEND"); b && *b) o.backend = b;
  const int default_timeout = static_cast<int>(o.timeout.count() / 1000);
  o.timeout = std::chrono::seconds(env_int("GEMKIT_DIST_TIMEOUT_S", 1, 86400, &default_timeout));
  return create(o);
}

Distributed Distributed::create(const DistributedOptions& o) {
  if (o.world_size < 1) fail(kWhere, "world_size must be >= 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    fail(kWhere, "rank " + std::to_string(o.rank) + " outside [0, " + std::to_string(o.world_size) + ")");
  if (o.master_port < 1 || o.master_port > 65535)
    fail(kWhere, "master_port must be in [1, 65535], got " + std::to_string(o.master_port));
  if (o.backend != "auto" && o.backend != "gloo" && o.backend != "nccl")
    fail(kWhere, "backend must be auto, gloo or nccl, got \"" + o.backend + "\"");
#ifndef USE_C10D_NCCL
  if (o.backend == "nccl")
    fail(kWhere, "backend nccl requested, but gemkit was built without NCCL (configure a CUDA LibTorch with "
                 "-DGEMKIT_USE_NCCL=ON) -- use gloo");
#endif
  Distributed d;
  d.rank_ = o.rank;
  d.world_size_ = o.world_size;
  d.local_rank_ = o.local_rank;
  if (o.world_size == 1) return d;

  const std::string where = kWhere + " (rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) +
                            ", " + o.master_addr + ":" + std::to_string(o.master_port) + ")";
  auto impl = std::make_unique<Impl>();
  impl->timeout = o.timeout;
  impl->rank = o.rank;
  impl->world_size = o.world_size;
  impl->store_address = o.master_addr + ":" + std::to_string(o.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<std::size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = o.timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);

    auto go = c10d::ProcessGroupGloo::Options::create(o.timeout);
    // Same choice as torch.distributed: GLOO_SOCKET_IFNAME when given; a loopback master means
    // a single-host run (bind to loopback); otherwise this host's address.
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (is_loopback(o.master_addr))
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", impl->store), o.rank, o.world_size, go);
    d.backend_ = "gloo";
#ifdef USE_C10D_NCCL
    if (o.backend == "nccl" || (o.backend == "auto" && torch::cuda::is_available())) {
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = o.timeout;
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", impl->store), o.rank, o.world_size, no);
      d.backend_ = "nccl";
    }
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(where, "rendezvous failed: " + reason(e));
  }
  d.impl_ = std::move(impl);
  return d;
}

void Distributed::average_gradients(const std::vector<at::Tensor>& params) {
  if (!enabled()) return;
  torch::NoGradGuard no_grad;
  // One flat buffer per (device, dtype) of the parameters -- the same groups on every rank,
  // since every rank runs the same model -- so one collective per group, not per tensor.
  // A parameter that trains but got no gradient on this rank (a routed expert no local token
  // chose) contributes zeros, so the buffers line up across ranks. Each buffer ends with one
  // "had a gradient" flag per parameter; when no rank had one, the gradient stays undefined,
  // as in a single process (the optimizer then skips it).
  struct Group {
    std::vector<at::Tensor> params;
  };
  std::map<std::tuple<int, int, int>, Group> groups;
  for (const auto& p : params) {
    if (!p.requires_grad()) continue;
    if (p.grad().defined() && p.grad().is_sparse()) fail(kWhere, "sparse gradients are not supported");
    const auto key = std::make_tuple(static_cast<int>(p.device().type()), static_cast<int>(p.device().index()),
                                     static_cast<int>(p.scalar_type()));
    groups[key].params.push_back(p);
  }
  try {
    for (auto& [key, group] : groups) {
      const auto& ps = group.params;
      const auto options = ps.front().options().requires_grad(false);
      std::vector<at::Tensor> parts;
      parts.reserve(ps.size() + 1);
      std::vector<double> had(ps.size());
      for (size_t i = 0; i < ps.size(); ++i) {
        const at::Tensor& g = ps[i].grad();
        had[i] = g.defined() ? 1.0 : 0.0;
        parts.push_back(g.defined() ? g.reshape({-1}) : torch::zeros({ps[i].numel()}, options));
      }
      parts.push_back(torch::tensor(had, torch::kFloat64).to(options));
      at::Tensor flat = torch::cat(parts);
      impl_->allreduce_sum(flat);
      const at::Tensor flags = flat.narrow(0, flat.numel() - static_cast<int64_t>(ps.size()), ps.size())
                                   .to(torch::kCPU, torch::kFloat64);
      flat.div_(static_cast<double>(world_size_));
      int64_t offset = 0;
      for (size_t i = 0; i < ps.size(); ++i) {
        at::Tensor p = ps[i];
        const int64_t n = p.numel();
        const at::Tensor avg = flat.narrow(0, offset, n).view(p.sizes());
        offset += n;
        if (flags[static_cast<int64_t>(i)].item<double>() == 0) continue;  // no rank had a gradient
        if (p.grad().defined())
          p.mutable_grad().copy_(avg);
        else
          p.mutable_grad() = avg.clone();
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(kWhere + " (rank " + std::to_string(rank_) + ")",
         "gradient all-reduce failed: " + impl_->diagnose() + " (" + reason(e) + ")");
  }
}

void Distributed::broadcast_parameters(const std::vector<at::Tensor>& params, int root) {
  if (!enabled()) return;
  if (root < 0 || root >= world_size_) fail(kWhere, "broadcast root " + std::to_string(root) + " out of range");
  torch::NoGradGuard no_grad;
  try {
    for (const auto& p : params) {
      // Broadcast into a contiguous buffer and copy back: the parameter keeps its identity
      // (optimizers hold it) and may be a non-contiguous view.
      at::Tensor buf = p.detach().contiguous();
      impl_->broadcast(buf, root);
      if (buf.data_ptr() != p.data_ptr()) p.detach().copy_(buf);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(kWhere + " (rank " + std::to_string(rank_) + ")",
         "parameter broadcast failed: " + impl_->diagnose() + " (" + reason(e) + ")");
  }
}

double Distributed::all_reduce_sum(double value) {
  if (!enabled()) return value;
  at::Tensor t = torch::full({1}, value, torch::kFloat64);
  try {
    impl_->allreduce_sum(t);
  } catch (const std::exception& e) {
    fail(kWhere + " (rank " + std::to_string(rank_) + ")", "all-reduce failed: " + impl_->diagnose() + " (" + reason(e) + ")");
  }
  return t.item<double>();
}

double Distributed::all_reduce_mean(double value) {
  if (!enabled()) return value;
  return all_reduce_sum(value) / world_size_;
}

void Distributed::barrier() {
  if (!enabled()) return;
  try {
    impl_->publish_progress();
    impl_->gloo->barrier()->wait(impl_->timeout);
  } catch (const std::exception& e) {
    fail(kWhere + " (rank " + std::to_string(rank_) + ")", "barrier failed: " + impl_->diagnose() + " (" + reason(e) + ")");
  }
}

}  // namespace gemkit
