// The CUDA path against the CPU path (built only against a LibTorch with CUDA; tests/CMakeLists.txt).
// The GEM model (SCAR experts and the token router) trained and run on the GPU must compute what
// the CPU computes: the same logits, the same routing losses, the same gradients for every
// parameter, and decoding with the KV cache on the GPU must equal the full GPU forward.
#include <gtest/gtest.h>

#include "core/torch_compat.h"
#include "model/transformer.h"
#include "routing/gem_modules.h"
#include "routing/scar.h"
#include "tests/scar_test_util.h"
#include "tests/test_util.h"

using namespace gemkit;

namespace {

// A model with GEM attached on `device`, with the same weights as `source` (model and modules).
struct GemModel {
  Transformer model;
  std::unique_ptr<GemModules> gem;
};

GemModel make_gem_model(const ModelConfig& config, torch::Device device) {
  GemModel m{Transformer(config), nullptr};
  m.model->to(device);
  m.gem = std::make_unique<GemModules>(m.model, test::scar_and_dtr_on_block_1());
  return m;
}

void copy_weights(GemModel& from, GemModel& to) {
  torch::NoGradGuard no_grad;
  auto dst = to.model->named_parameters();
  for (const auto& p : from.model->named_parameters()) dst[p.key()].copy_(p.value());
  to.gem->load_named_parameters(from.gem->named_parameters(), "test");
}

double max_rel_diff(const torch::Tensor& gpu, const torch::Tensor& cpu) {
  auto g = gpu.detach().to(torch::kCPU).to(torch::kDouble), c = cpu.detach().to(torch::kDouble);
  return ((g - c).abs().max() / (c.abs().max() + 1e-12)).item<double>();
}

// Loss of one training step: next-token cross-entropy plus SCAR's balance, z and supervision
// losses plus the token router's auxiliary loss, as the trainer sums them.
torch::Tensor gem_loss(GemModel& m, const torch::Tensor& ids, const torch::Tensor& row_expert) {
  auto logits = m.model->forward(ids).logits;
  const int64_t V = logits.size(-1);
  auto ce = torch::nn::functional::cross_entropy(logits.narrow(1, 0, ids.size(1) - 1).reshape({-1, V}),
                                                 ids.narrow(1, 1, ids.size(1) - 1).reshape({-1}));
  ScarLosses l = m.gem->scar()->losses(row_expert, {});
  return ce + 0.01 * l.balance + 0.001 * l.z + 0.1 * l.supervision + (*m.gem->dtr())->aux_loss();
}

}  // namespace

TEST(Cuda, GemTrainingStepMatchesTheCpu) {
  ASSERT_TRUE(torch::cuda::is_available());
  const auto cuda = compat::parse_device("cuda");
  const ModelConfig c = test::tiny_decoder_config(3);
  torch::manual_seed(11);
  GemModel cpu = make_gem_model(c, torch::kCPU);
  test::randomise_experts(*cpu.gem->scar());  // experts that change the output (B = 0 at start)
  GemModel gpu = make_gem_model(c, cuda);
  copy_weights(cpu, gpu);
  EXPECT_EQ(gpu.gem->named_parameters().begin()->second.device().type(), torch::kCUDA);

  auto ids = torch::randint(50, {3, 16});
  auto row_expert = torch::tensor({1, 2, -1}, torch::kInt64);
  auto loss_cpu = gem_loss(cpu, ids, row_expert);
  auto loss_gpu = gem_loss(gpu, ids.to(cuda), row_expert.to(cuda));
  EXPECT_GT(loss_cpu.item<double>(), 0.0);
  EXPECT_NEAR(loss_gpu.item<double>(), loss_cpu.item<double>(), 1e-4);
  // Same routing: realised capacity and experts per token are counts of decisions.
  const auto stats_cpu = cpu.gem->metrics(), stats_gpu = gpu.gem->metrics();
  for (const char* key : {"dtr/realised_capacity", "scar/experts_per_token"}) {
    ASSERT_TRUE(stats_cpu.count(key)) << key;
    EXPECT_NEAR(stats_gpu.at(key), stats_cpu.at(key), 1e-9) << key;
  }
  loss_cpu.backward();
  loss_gpu.backward();
  int64_t compared = 0;
  auto gpu_params = gpu.model->named_parameters();
  for (const auto& p : cpu.model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_LT(max_rel_diff(gpu_params[p.key()].grad(), p.value().grad()), 1e-4) << p.key();
    ++compared;
  }
  auto gpu_gem = gpu.gem->named_parameters();
  for (const auto& [name, t] : cpu.gem->named_parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().max().item<double>(), 0.0) << name;
    EXPECT_LT(max_rel_diff(gpu_gem.at(name).grad(), t.grad()), 1e-4) << name;
    ++compared;
  }
  EXPECT_GT(compared, 40);
}

TEST(Cuda, DecodingWithTheCacheEqualsTheFullForward) {
  ASSERT_TRUE(torch::cuda::is_available());
  const auto cuda = compat::parse_device("cuda");
  torch::manual_seed(12);
  GemModel m = make_gem_model(test::tiny_decoder_config(3), cuda);
  test::randomise_routing(*m.gem);
  m.model->eval();
  torch::NoGradGuard no_grad;
  const int64_t T = 12;
  auto ids = torch::randint(50, {1, T}).to(cuda);
  auto full = m.model->forward(ids).logits;
  ASSERT_TRUE(full.is_cuda());
  const auto metrics = m.gem->metrics();
  EXPECT_GT(metrics.at("dtr/realised_capacity"), 0.0);  // the router skips some tokens
  EXPECT_LT(metrics.at("dtr/realised_capacity"), 1.0);
  auto cache = m.model->make_cache();
  ForwardOptions fo;
  fo.cache = &cache;
  for (int64_t t = 0; t < T; ++t)
    EXPECT_LT((m.model->forward(ids.narrow(1, t, 1), fo).logits - full.narrow(1, t, 1)).abs().max().item<double>(),
              1e-4)
        << t;
}
