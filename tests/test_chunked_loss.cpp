// The output layer's cross-entropy in chunks (model/chunked_loss.h) against the plain loss on
// full logits: the loss and the gradients of the input and the weight, with ignored labels and
// chunk sizes that do and do not divide the rows; and through the Transformer for a tied and an
// untied head, every parameter's gradient.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/chunked_loss.h"
#include "model/loss.h"
#include "model/transformer.h"

using namespace gemkit;

namespace {

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

ModelConfig tiny(bool tied) {
  return ModelConfig::from_json_text(std::string(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 300,
      "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "max_position_embeddings": 64, "tie_word_embeddings": )") +
                                         (tied ? "true}" : "false}"),
                                     "tiny config");
}

}  // namespace

// fp32 sums in another order: measured differences up to 4.8e-7 (loss, about 4 ulp of 3.9) and
// 8.9e-8 (gradients); bounds 2e-6 and 4e-7.
TEST(ChunkedLoss, EqualsCrossEntropyOnFullLogits) {
  torch::manual_seed(0);
  const int64_t N = 37, H = 16, V = 50;
  const torch::Tensor x0 = torch::randn({N, H}), w0 = torch::randn({V, H}) * 0.5;
  torch::Tensor labels = torch::randint(V, {N}, torch::kInt64);
  labels.index_put_({torch::tensor({0, 5, 6, 36})}, kIgnoreIndex);

  const torch::Tensor xr = x0.clone().requires_grad_(true), wr = w0.clone().requires_grad_(true);
  const torch::Tensor want = torch::nn::functional::cross_entropy(
      torch::matmul(xr, wr.t()), labels, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex));
  (want * 3).backward();  // a non-unit incoming gradient reaches both paths
  for (const int64_t chunk : {1, 7, 37, 100}) {
    SCOPED_TRACE(chunk);
    const torch::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
    const torch::Tensor got = chunked_cross_entropy(x, w, labels, chunk);
    (got * 3).backward();
    std::printf("chunk %ld: loss difference %.1e, gradient differences %.1e (x) %.1e (weight)\n", long(chunk),
                std::fabs(got.item<double>() - want.item<double>()), max_abs(x.grad() - xr.grad()), max_abs(w.grad() - wr.grad()));
    EXPECT_NEAR(got.item<double>(), want.item<double>(), 2e-6);
    EXPECT_LT(max_abs(x.grad() - xr.grad()), 4e-7);
    EXPECT_LT(max_abs(w.grad() - wr.grad()), 4e-7);
  }
  // Without gradients (validation), and with only one input needing one (a frozen head).
  {
    torch::NoGradGuard no_grad;
    EXPECT_NEAR(chunked_cross_entropy(x0, w0, labels, 8).item<double>(), want.item<double>(), 2e-6);
  }
  const torch::Tensor x = x0.clone().requires_grad_(true);
  chunked_cross_entropy(x, w0, labels, 8).mul(3).backward();
  EXPECT_LT(max_abs(x.grad() - xr.grad()), 4e-7);
  EXPECT_THROW(chunked_cross_entropy(x0, w0.t(), labels, 8), std::exception);
}

// Through the model: chunked_lm_loss(hidden) against loss(logits), all gradients, both heads.
TEST(ChunkedLoss, TransformerLossAndGradientsMatchTheFullLogits) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    torch::manual_seed(1);
    Transformer model(tiny(tied));
    const torch::Tensor ids = torch::randint(300, {3, 20}, torch::kInt64);
    torch::Tensor labels = ids.clone();
    labels.index_put_({0, torch::indexing::Slice(0, 5)}, kIgnoreIndex);
    ASSERT_TRUE(model->chunked_lm_loss_supported());

    const torch::Tensor full = model->loss(model->forward(ids), labels);
    full.backward();
    std::map<std::string, torch::Tensor> want;
    for (const auto& p : model->named_parameters()) want[p.key()] = p.value().grad().clone();
    model->zero_grad();

    ForwardOptions options;
    options.skip_logits = true;
    const ModelOutput out = model->forward(ids, options);
    EXPECT_FALSE(out.logits.defined());
    const torch::Tensor chunked = model->chunked_lm_loss(out.hidden, labels, 16);
    chunked.backward();
    EXPECT_NEAR(chunked.item<double>(), full.item<double>(), 2e-6);
    double worst = 0;
    for (const auto& p : model->named_parameters()) {
      const double diff = max_abs(p.value().grad() - want.at(p.key())) / (1 + max_abs(want.at(p.key())));
      worst = std::max(worst, diff);
      EXPECT_LT(diff, 2e-7) << p.key();  // measured 2.3e-8
    }
    std::printf("%s head: loss difference %.1e, largest relative gradient difference %.1e\n", tied ? "tied" : "untied",
                std::fabs(chunked.item<double>() - full.item<double>()), worst);
  }
}
