// Data parallel over c10d (train/distributed.h). The test binary re-runs itself as two
// worker processes on 127.0.0.1 (torchrun-style environment); each trains a tiny model on its
// half of every combined batch, averaging gradients, and the result must equal one process
// training on the combined batches. Children are killed when they overrun a deadline, and
// the store has a timeout, so nothing hangs.
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "model/transformer.h"
#include "train/distributed.h"

extern char** environ;

using namespace gemkit;
namespace fs = std::filesystem;

namespace {

constexpr int kSteps = 4;
constexpr int kBatch = 4;  // combined batch; each of two ranks takes half
constexpr int kSeq = 8;

Transformer tiny_model(uint64_t seed) {
  torch::manual_seed(seed);
  Transformer m(ModelConfig::from_json_text(
      R"({"architectures":["LlamaForCausalLM"],"vocab_size":32,"hidden_size":16,"intermediate_size":24,)"
      R"("num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":16})",
      "test config"));
  m->to(torch::kFloat64);
  return m;
}

// Causal LM loss in float64 (the model's own loss computes in float32; float64 throughout
// keeps the 1-vs-2-process comparison free of rounding that AdamW could amplify).
torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t V = logits.size(-1);
  return torch::nn::functional::cross_entropy(logits.slice(1, 0, -1).reshape({-1, V}), ids.slice(1, 1).reshape({-1}));
}

struct Trained {
  std::vector<torch::Tensor> params;
  std::vector<double> losses;  // mean over ranks of each step's loss
};

// The training loop both the single process and the ranks run: rank r of N uses rows
// [r * kBatch / N, (r + 1) * kBatch / N) of every combined batch.
Trained train(Distributed& dist) {
  // Ranks start from different weights on purpose: broadcast_parameters must align them.
  Transformer m = tiny_model(1 + static_cast<uint64_t>(dist.rank()));
  m->train();
  std::vector<torch::Tensor> params = m->parameters();
  // A frozen parameter has no gradient and must be skipped consistently.
  params.front().set_requires_grad(false);
  dist.broadcast_parameters(params);
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  Trained out;
  const int64_t per_rank = kBatch / dist.world_size();
  for (int step = 0; step < kSteps; ++step) {
    torch::manual_seed(100 + step);
    const torch::Tensor combined = torch::randint(0, 32, {kBatch, kSeq}, torch::kInt64);
    const torch::Tensor mine = combined.slice(0, dist.rank() * per_rank, (dist.rank() + 1) * per_rank);
    opt.zero_grad();
    torch::Tensor loss = lm_loss(m->forward(mine).logits, mine);
    loss.backward();
    dist.average_gradients(params);
    opt.step();
    out.losses.push_back(dist.all_reduce_mean(loss.item<double>()));
  }
  for (const auto& p : m->parameters()) out.params.push_back(p.detach().clone());
  return out;
}

// Collectives on their own: mean/sum of scalars, broadcast from a non-zero root, gradient
// averaging over several dtypes. Returns a description of the first failure, or "".
std::string check_collectives(Distributed& dist) {
  const int r = dist.rank();
  if (dist.all_reduce_mean(r + 1.0) != 1.5) return "all_reduce_mean";
  if (dist.all_reduce_sum(r + 1.0) != 3.0) return "all_reduce_sum";
  torch::Tensor p = torch::full({3, 2}, static_cast<double>(r), torch::kFloat64);
  dist.broadcast_parameters({p}, 1);
  if (!torch::equal(p, torch::ones({3, 2}, torch::kFloat64))) return "broadcast from root 1";
  torch::Tensor a = torch::zeros({5}, torch::kFloat32).set_requires_grad(true);
  torch::Tensor b = torch::zeros({2, 2}, torch::kFloat64).set_requires_grad(true);
  torch::Tensor c = torch::zeros({4}, torch::kFloat32).set_requires_grad(true);
  a.mutable_grad() = torch::full({5}, 2.0 * r, torch::kFloat32);
  b.mutable_grad() = torch::full({2, 2}, 4.0 * r, torch::kFloat64);
  c.mutable_grad() = torch::arange(4, torch::kFloat32) * (r + 1);
  dist.average_gradients({a, b, c});
  if (!torch::equal(a.grad(), torch::ones({5}, torch::kFloat32))) return "average_gradients float32";
  if (!torch::equal(b.grad(), torch::full({2, 2}, 2.0, torch::kFloat64))) return "average_gradients float64";
  if (!torch::allclose(c.grad(), torch::arange(4, torch::kFloat32) * 1.5)) return "average_gradients float32 (second tensor of the group)";
  // Gradients that exist on one rank only (an unused expert elsewhere), or on none.
  torch::Tensor d = torch::zeros({3}, torch::kFloat32).set_requires_grad(true);
  torch::Tensor e = torch::zeros({2}, torch::kFloat32).set_requires_grad(true);
  if (r == 1) d.mutable_grad() = torch::full({3}, 4.0, torch::kFloat32);
  a.mutable_grad() = torch::full({5}, 2.0 * r, torch::kFloat32);
  dist.average_gradients({a, d, e});
  if (!d.grad().defined() || !torch::equal(d.grad(), torch::full({3}, 2.0, torch::kFloat32)))
    return "average_gradients with a gradient on one rank only";
  if (e.grad().defined()) return "average_gradients invented a gradient no rank had";
  if (!torch::equal(a.grad(), torch::ones({5}, torch::kFloat32))) return "average_gradients mixed group";
  dist.barrier();
  return "";
}

void save_trained(const Trained& t, const std::string& path) {
  std::vector<torch::Tensor> all = t.params;
  all.push_back(torch::tensor(t.losses, torch::kFloat64));
  torch::save(all, path);
}

Trained load_trained(const std::string& path) {
  std::vector<torch::Tensor> all;
  torch::load(all, path);
  Trained t;
  const torch::Tensor losses = all.back();
  all.pop_back();
  t.params = all;
  for (int64_t i = 0; i < losses.numel(); ++i) t.losses.push_back(losses[i].item<double>());
  return t;
}

// Worker mode: when GEMKIT_TEST_DIST_OUT is set this process is a rank; it runs before
// gtest's main and exits, so the children never run the tests themselves.
int run_worker(const std::string& out_dir) {
  try {
    Distributed dist = Distributed::from_env();
    if (!dist.enabled() || dist.world_size() != 2) throw std::runtime_error("expected an enabled group of 2");
    const std::string bad = check_collectives(dist);
    if (!bad.empty()) throw std::runtime_error("collective check failed: " + bad);
    Trained t = train(dist);
    save_trained(t, out_dir + "/rank" + std::to_string(dist.rank()) + ".pt");
    dist.barrier();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "worker error: " << e.what() << "\n";
    return 3;
  }
}

// Worker mode runs from a gtest environment (inside main, after every static initialiser of
// the program has run) and exits before any test starts.
class WorkerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* out = std::getenv("GEMKIT_TEST_DIST_OUT");
    if (!out || !*out) return;
    const int rc = run_worker(out);
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(rc);
  }
};
[[maybe_unused]] ::testing::Environment* const kWorkerEnvironment =
    ::testing::AddGlobalTestEnvironment(new WorkerEnvironment);

using test::free_port;

// Saves and restores environment variables around a test.
struct EnvGuard {
  std::vector<std::pair<std::string, std::string>> saved;
  std::vector<std::string> unset_after;
  void set(const std::string& k, const char* v) {
    if (const char* old = std::getenv(k.c_str()))
      saved.emplace_back(k, old);
    else
      unset_after.push_back(k);
    if (v)
      ::setenv(k.c_str(), v, 1);
    else
      ::unsetenv(k.c_str());
  }
  ~EnvGuard() {
    for (const auto& [k, v] : saved) ::setenv(k.c_str(), v.c_str(), 1);
    for (const auto& k : unset_after) ::unsetenv(k.c_str());
  }
};

using test::expect_error;

}  // namespace

TEST(Distributed, DisabledWithoutWorldSizeIsANoOp) {
  EnvGuard env;
  env.set("WORLD_SIZE", nullptr);
  Distributed d = Distributed::from_env();
  EXPECT_FALSE(d.enabled());
  EXPECT_TRUE(d.is_main());
  EXPECT_EQ(d.world_size(), 1);
  torch::Tensor p = torch::zeros({3}).set_requires_grad(true);
  p.mutable_grad() = torch::full({3}, 2.0);
  d.average_gradients({p});
  d.broadcast_parameters({p});
  d.barrier();
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({3}, 2.0)));
  EXPECT_EQ(d.all_reduce_mean(2.5), 2.5);
  env.set("WORLD_SIZE", "1");
  EXPECT_FALSE(Distributed::from_env().enabled());
}

TEST(Distributed, EnvironmentErrorsNameTheVariable) {
  EnvGuard env;
  env.set("WORLD_SIZE", "2");
  env.set("RANK", nullptr);
  env.set("MASTER_ADDR", "127.0.0.1");
  env.set("MASTER_PORT", "29999");
  expect_error([] { Distributed::from_env(); }, {"RANK", "not set"});
  env.set("RANK", "2");
  expect_error([] { Distributed::from_env(); }, {"RANK", "[0, 1]", "\"2\""});
  env.set("RANK", "0");
  env.set("MASTER_PORT", "http");
  expect_error([] { Distributed::from_env(); }, {"MASTER_PORT"});
  env.set("WORLD_SIZE", "two");
  expect_error([] { Distributed::from_env(); }, {"WORLD_SIZE"});
  DistributedOptions o;
  o.world_size = 2;
  o.backend = "mpi";
  expect_error([&] { Distributed::create(o); }, {"backend"});
}

TEST(Distributed, MissingPeerTimesOutInsteadOfHanging) {
  DistributedOptions o;
  o.world_size = 2;
  o.rank = 0;
  o.master_port = free_port();
  o.timeout = std::chrono::milliseconds(1000);
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { Distributed::create(o); }, {"rank 0 of 2", "rendezvous failed"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

TEST(Distributed, TwoProcessesMatchOneProcessOnTheCombinedBatch) {
  const std::string dir = ::testing::TempDir() + "gemkit_dist_" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int port = free_port();
  ASSERT_GT(port, 0);

  // The two ranks, started from this very binary.
  std::vector<pid_t> pids;
  for (int rank = 0; rank < 2; ++rank) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      const std::string s = *e;
      bool torchrun_var = false;
      for (const char* k : {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "MASTER_ADDR=", "MASTER_PORT="})
        torchrun_var = torchrun_var || s.rfind(k, 0) == 0;
      if (!torchrun_var) env_strings.push_back(s);
    }
    env_strings.push_back("RANK=" + std::to_string(rank));
    env_strings.push_back("LOCAL_RANK=" + std::to_string(rank));
    env_strings.push_back("WORLD_SIZE=2");
    env_strings.push_back("MASTER_ADDR=127.0.0.1");
    env_strings.push_back("MASTER_PORT=" + std::to_string(port));
    env_strings.push_back("GEMKIT_DIST_TIMEOUT_S=30");
    env_strings.push_back("GEMKIT_TEST_DIST_OUT=" + dir);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    const std::string log = dir + "/rank" + std::to_string(rank) + ".log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::string self = fs::read_symlink("/proc/self/exe").string();
    char* argv[] = {self.data(), nullptr};
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0) << "posix_spawn failed";
    pids.push_back(pid);
  }

  // Meanwhile the single-process reference on the combined batches.
  Distributed single;
  const Trained reference = train(single);

  // Wait for both, killing them at the deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  std::vector<int> status(2, -1);
  for (size_t done = 0; done < pids.size();) {
    done = 0;
    for (size_t i = 0; i < pids.size(); ++i) {
      if (status[i] != -1) {
        ++done;
        continue;
      }
      int st = 0;
      if (::waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        status[i] = st;
        ++done;
      }
    }
    if (done < pids.size() && std::chrono::steady_clock::now() > deadline) {
      for (size_t i = 0; i < pids.size(); ++i)
        if (status[i] == -1) {
          ::kill(pids[i], SIGKILL);
          ::waitpid(pids[i], &status[i], 0);
        }
      ADD_FAILURE() << "workers did not finish within 90 s; killed";
      break;
    }
    if (done < pids.size()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int rank = 0; rank < 2; ++rank) {
    const std::string log = read_text_file(dir + "/rank" + std::to_string(rank) + ".log");
    EXPECT_TRUE(WIFEXITED(status[rank]) && WEXITSTATUS(status[rank]) == 0) << "rank " << rank << ":\n" << log;
  }
  if (HasFailure()) {
    fs::remove_all(dir);
    return;
  }

  const Trained r0 = load_trained(dir + "/rank0.pt"), r1 = load_trained(dir + "/rank1.pt");
  ASSERT_EQ(r0.params.size(), reference.params.size());
  double sync_err = 0, param_err = 0, moved = 0, loss_err = 0;
  for (size_t i = 0; i < reference.params.size(); ++i) {
    sync_err = std::max(sync_err, (r0.params[i] - r1.params[i]).abs().max().item<double>());
    param_err = std::max(param_err, (r0.params[i] - reference.params[i]).abs().max().item<double>());
  }
  // Distance from the initial weights: the steps really changed the model.
  Transformer init = tiny_model(1);
  const auto init_params = init->parameters();
  for (size_t i = 1; i < init_params.size(); ++i)
    moved = std::max(moved, (reference.params[i] - init_params[i]).abs().max().item<double>());
  for (int s = 0; s < kSteps; ++s) {
    loss_err = std::max(loss_err, std::abs(r0.losses[s] - reference.losses[s]));
    EXPECT_EQ(r0.losses[s], r1.losses[s]);
  }
  EXPECT_EQ(sync_err, 0.0);  // the ranks stay bit-identical
  EXPECT_LT(param_err, 1e-6) << param_err;
  EXPECT_LT(loss_err, 1e-9) << loss_err;
  EXPECT_GT(moved, 1e-2);
  // The frozen first parameter (embeddings) is rank 0's, not rank 1's.
  EXPECT_TRUE(torch::equal(r1.params[0], init_params[0]));
  std::cout << "[distributed] 2 ranks vs 1 process after " << kSteps << " AdamW steps: parameter max err "
            << param_err << ", loss max err " << loss_err << ", rank sync err " << sync_err << "\n";
  fs::remove_all(dir);
}
