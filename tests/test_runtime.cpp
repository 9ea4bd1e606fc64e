// gemkit's edge runtime (runtime/) against gemkit's LibTorch model on the same exported files:
// logits within stated bounds for F32, Q8_0, Q4_0 and hybrid llama GGUF files, and for the
// compact format with token routing the same routing decisions as the LibTorch threshold rule.
// The kernels and the loader errors are tested without LibTorch in tests/runtime/ (also on ARM64).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <tuple>

#include "core/error.h"
#include "export/compact_export.h"
#include "export/gguf_export.h"
#include "formats/block_quant.h"
#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "logits_test_util.h"
#include "model/checkpoint.h"
#include "quant/qat.h"
#include "routing/gem_modules.h"
#include "runtime/gemkit_runtime.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/perplexity.h"
#include "test_util.h"

using namespace gemkit;

namespace {

const std::string kBase = std::string(GEMKIT_SOURCE_DIR) + "/checkpoints/gemkit-base";

std::vector<int32_t> test_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::vector<int32_t> t{1};
  while (int64_t(t.size()) < n) t.push_back(int32_t(3 + rng() % uint32_t(vocab - 3)));
  return t;
}

// Runtime logits of every position of a file, [T, V].
torch::Tensor runtime_logits(const std::string& file, const std::vector<int32_t>& tokens, int threads = 1) {
  return test::runtime_logits(runtime::Model(file), tokens, threads);
}

using test::agreement;
using test::torch_logits;

}  // namespace

// Bounds (stated in docs/runtime.md). F32: the same weights and float arithmetic in another
// order: max |logit difference| < 1e-3. Quantized: the runtime multiplies with Q8_0 activations
// rounded half to even as llama.cpp does, LibTorch's reference forward (QAT hooks with
// activations) rounds half away: top-1 >= 97%, mean KL < 1e-4 (measured: top-1 98.8-100%, mean
// KL 0.9-1.2e-5 on 80 positions).
TEST(Runtime, DenseExportsAgreeWithTheLibTorchModel) {
  const std::string dir = test::temp_folder("gemkit_runtime", "dense");
  const std::vector<int32_t> tokens = test_tokens(200, 4096, 1);
  struct Case {
    const char* name;
    QuantPolicy policy;
  };
  for (const Case& c : {Case{"f32", QuantPolicy()}, Case{"q8_0", QuantPolicy::uniform(QuantType::Q8_0)},
                        Case{"q4_0", QuantPolicy::uniform(QuantType::Q4_0)}, Case{"hybrid", QuantPolicy::hybrid()}}) {
    Pretrained pre = load_pretrained(kBase);
    GgufExportOptions o;
    o.policy = c.policy;
    o.tokenizer_folder = kBase;
    const std::string file = dir + "/" + c.name + ".gguf";
    export_gguf(pre.model, o, file);
    std::unique_ptr<Qat> qat;
    if (!c.policy.rules().empty()) qat = std::make_unique<Qat>(pre.model, QatOptions{c.policy, true});
    const torch::Tensor ref = torch_logits(pre.model, tokens);
    for (int threads : {1, 2}) {
      const torch::Tensor ours = runtime_logits(file, tokens, threads);
      const test::Agreement a = agreement(ref, ours);
      const double max_abs = (ours - ref).abs().max().item<double>();
      std::printf("runtime vs LibTorch, %-6s (%d thread%s): top-1 %.4f, mean KL %.3g, max |logit diff| %.3g\n", c.name,
                  threads, threads > 1 ? "s" : "", a.top1, a.mean_kl, max_abs);
      if (c.policy.rules().empty()) {
        EXPECT_LT(max_abs, 1e-3) << c.name;
      } else {
        EXPECT_GE(a.top1, 0.97) << c.name;
        EXPECT_LT(a.mean_kl, 1e-4) << c.name;
      }
    }
  }
}

namespace {

// SCAR with experts "law" and "finance" on all seven linears of `blocks`.
GemConfig scar_on_every_linear(std::vector<int64_t> blocks, int64_t rank, double alpha) {
  GemConfig g;
  g.scar = true;
  g.scar_options.experts = {"law", "finance"};
  g.scar_options.blocks = std::move(blocks);
  g.scar_options.rank = rank;
  g.scar_options.alpha = alpha;
  g.scar_options.router.router_dim = 16;
  g.scar_options.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return g;
}

CompactExportOptions experts_as(QuantType type) {
  CompactExportOptions o;
  o.expert_type = type;
  return o;
}

ModelConfig routed_config() {
  ModelConfig c = test::tiny_decoder_config(4);
  c.vocab_size = 4096;  // the bundled tokenizer's
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = true;
  return c;
}

// Saves `m` with `gem` attached as a routed checkpoint folder (random router weights, random
// expert B so that experts change the output).
void save_routed(const std::string& dir, Transformer m, GemModules& gem) {
  SaveOptions so;
  so.tokenizer_source = kBase;
  save_pretrained(m, {}, dir, so);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : gem.named_parameters()) {
      if (name.rfind("dtr.", 0) == 0 && name.find("weight") != std::string::npos) t.normal_(0.0, 2.0);  // mixed decisions
      if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.3);
      if (name.find(".keys") != std::string::npos) t.normal_(0.0, 3.0);  // confident and ambiguous tokens
    }
  }
  gem.save(dir);
}

}  // namespace

TEST(Runtime, CompactFormatRoutesLikeTheLibTorchThresholdRule) {
  const std::string dir = test::temp_folder("gemkit_runtime", "compact");
  const ModelConfig c = routed_config();
  torch::manual_seed(5);
  Transformer m(c);
  m->eval();
  GemConfig g;
  g.dtr = true;
  g.dtr_blocks = {1, 2};
  g.dtr_options.initial_bias = 0.0;
  GemModules gem(m, g);
  save_routed(dir, m, gem);
  const std::string file = dir + "/compact.gguf";
  export_compact(dir, {}, file);

  const std::vector<int32_t> tokens = test_tokens(60, c.vocab_size, 2);
  const torch::Tensor ref = torch_logits(m, tokens);
  runtime::Model rm(file);
  EXPECT_EQ(rm.routed_blocks(), 2);
  runtime::Session s(rm, 60, 1);
  const std::vector<float>& all = s.eval(tokens, true);
  const torch::Tensor ours = torch::from_blob(const_cast<float*>(all.data()), {60, c.vocab_size}, torch::kFloat);
  int64_t processed = 0, decisions = 0;
  for (const auto& r : (*gem.dtr())->routers()) {
    const torch::Tensor sel = r->last_selection()[0];  // [T] bool, the threshold rule in eval mode
    const auto& mine = s.routing_decisions()[size_t(r->layer_index())];
    ASSERT_EQ(int64_t(mine.size()), sel.size(0));
    for (int64_t t = 0; t < sel.size(0); ++t) EXPECT_EQ(bool(mine[size_t(t)]), sel[t].item<bool>()) << "block " << r->layer_index() << " token " << t;
    processed += sel.sum().item<int64_t>();
    decisions += sel.size(0);
  }
  EXPECT_GT(processed, decisions / 10);  // the test sees both decisions
  EXPECT_LT(processed, decisions * 9 / 10);
  EXPECT_NEAR(s.stats().realised_capacity(), double(processed) / double(decisions), 1e-12);
  EXPECT_LT((ours - ref).abs().max().item<double>(), 1e-3);
}

TEST(Runtime, CompactFormatRunsScarExpertsRoutedAndForced) {
  const std::string dir = test::temp_folder("gemkit_runtime", "scar");
  const ModelConfig c = routed_config();
  torch::manual_seed(6);
  Transformer m(c);
  m->eval();
  GemConfig g = scar_on_every_linear({1, 2}, 4, 8);
  g.dtr = true;
  g.dtr_blocks = {2};
  g.dtr_options.initial_bias = 0.0;
  GemModules gem(m, g);
  save_routed(dir, m, gem);
  const std::string file = dir + "/scar.gguf";
  export_compact(dir, experts_as(QuantType::F16), file);
  // The compact format stores the experts in f16: the reference is the LibTorch model with the
  // same f16-rounded experts (the runtime's own error is what the bound checks).
  {
    torch::NoGradGuard no_grad;
    int rounded = 0;
    for (auto& [name, t] : gem.scar()->named_parameters())
      if (name.rfind("experts.", 0) == 0) t.copy_(t.to(torch::kHalf).to(torch::kFloat)), ++rounded;
    ASSERT_GT(rounded, 0);
  }
  const std::vector<int32_t> tokens = test_tokens(40, c.vocab_size, 3);
  const torch::Tensor routed_ref = torch_logits(m, tokens);
  EXPECT_LT((runtime_logits(file, tokens) - routed_ref).abs().max().item<double>(), 1e-3) << "routed";
  // Every token to one expert: gemkit-run's --domain against LibTorch's forced expert.
  runtime::Model rm(file);
  for (const std::string d : {"law", "finance", "general"}) {
    gem.scar()->set_forced_expert(gem.scar()->expert_index(d));
    const torch::Tensor ref = torch_logits(m, tokens);
    runtime::Session s(rm, 40, 1);
    s.set_domain(d);
    const std::vector<float>& all = s.eval(tokens, true);
    const torch::Tensor ours = torch::from_blob(const_cast<float*>(all.data()), {40, c.vocab_size}, torch::kFloat);
    EXPECT_LT((ours - ref).abs().max().item<double>(), 1e-3) << d;
    EXPECT_GT((ref - routed_ref).abs().max().item<double>(), 1e-2) << d << ": forcing changes nothing (test too weak)";
  }
  runtime::Session s(rm, 4, 1);
  test::expect_error([&] { s.set_domain("tax"); }, {"tax"});
  gem.scar()->set_forced_expert(-1);

  // The general expert's logit bias travels in the file (gemkit.scar.general_bias) and the
  // runtime routes with it as LibTorch does; a large bias sends every token to the base path.
  {
    gem.set_scar_general_bias(1.5);
    CompactExportOptions o = experts_as(QuantType::F16);
    o.scar_general_bias = 1.5;  // the checkpoint's gem.json has 0: the export's override ships
    const std::string biased = dir + "/scar_biased.gguf";
    export_compact(dir, o, biased);
    const torch::Tensor ref = torch_logits(m, tokens);
    EXPECT_LT((runtime_logits(biased, tokens) - ref).abs().max().item<double>(), 1e-3) << "biased";
    EXPECT_GT((ref - routed_ref).abs().max().item<double>(), 1e-2) << "the bias changes nothing (test too weak)";
    gem.set_scar_general_bias(0.0);
  }

  // Decoding token by token with the KV cache equals the batched pass over the prompt, routing
  // included (the same dot products in the same order: bit for bit).
  for (int threads : {1, 2}) {
    runtime::Session batch(rm, 40, threads), step(rm, 40, threads);
    const std::vector<float> all = batch.eval(tokens, true);
    for (size_t t = 0; t < tokens.size(); ++t) {
      const std::vector<float>& one = step.eval({tokens[t]});
      ASSERT_EQ(0, std::memcmp(one.data(), all.data() + t * size_t(c.vocab_size), size_t(c.vocab_size) * 4)) << "position " << t;
    }
    EXPECT_EQ(batch.routing_decisions(), step.routing_decisions());
    test::expect_error([&] { step.eval({1}); }, {"context", "full"});
  }
}

// Q8_0 experts (`export compact --expert-quant q8_0`): the runtime multiplies them as it does
// Q8_0 base weights (activations and A x quantized to Q8_0 blocks). Reference: the LibTorch
// model with the experts rounded to Q8_0 and back, so the bounds check the runtime's own part;
// the file is smaller by the experts' f16 bytes less their Q8_0 bytes (34 per 32 values, not 64).
TEST(Runtime, CompactFormatRunsQ8_0Experts) {
  const std::string dir = test::temp_folder("gemkit_runtime", "scar_q8");
  const ModelConfig c = routed_config();
  torch::manual_seed(7);
  Transformer m(c);
  m->eval();
  GemModules gem(m, scar_on_every_linear({0, 3}, 32, 64));
  save_routed(dir, m, gem);
  {
    // Experts of a trained model's size (save_routed's B ~ N(0, 0.3) at scale 2 would outweigh
    // the base many times over, and the activation rounding with it).
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : gem.scar()->named_parameters())
      if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.02);
    gem.save(dir);
  }
  const std::string f16 = dir + "/f16.gguf", q8 = dir + "/q8_0.gguf";
  export_compact(dir, experts_as(QuantType::F16), f16);
  export_compact(dir, experts_as(QuantType::Q8_0), q8);
  int64_t expert_values = 0;
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : gem.scar()->named_parameters()) {
      if (name.rfind("experts.", 0) != 0) continue;
      auto rows = t.detach().to(torch::kFloat).contiguous().view({-1, t.size(-1)});
      const int64_t n = rows.size(1);
      ASSERT_EQ(n % 32, 0) << name;
      std::vector<uint8_t> block(size_t(quant_row_bytes(QuantType::Q8_0, n)));
      for (int64_t r = 0; r < rows.size(0); ++r) {
        float* row = rows[r].data_ptr<float>();
        quantize_row(QuantType::Q8_0, row, n, block.data());
        dequantize_row(QuantType::Q8_0, block.data(), n, row);
      }
      t.copy_(rows.view(t.sizes()));
      expert_values += t.numel();
    }
  }
  const std::vector<int32_t> tokens = test_tokens(40, c.vocab_size, 4);
  runtime::Model rm(q8);
  for (const std::string d : {"law", "finance", ""}) {
    gem.scar()->set_forced_expert(d.empty() ? -1 : gem.scar()->expert_index(d));
    const torch::Tensor ref = torch_logits(m, tokens);
    runtime::Session s(rm, 40, 1);
    s.set_domain(d);
    const std::vector<float>& all = s.eval(tokens, true);
    const torch::Tensor ours = torch::from_blob(const_cast<float*>(all.data()), {40, c.vocab_size}, torch::kFloat);
    const double max_abs = (ours - ref).abs().max().item<double>();
    const test::Agreement a = agreement(ref, ours);
    std::printf("Q8_0 experts (%s): max |logit diff| %.3g (logits' max |value| %.3g), top-1 %.4f, mean KL %.3g\n",
                d.empty() ? "routed" : d.c_str(), max_abs, ref.abs().max().item<double>(), a.top1, a.mean_kl);
    // Forced: measured 4.3e-3 / 5.2e-3; routed, a rounding can flip an ambiguous token's
    // expert (measured 0.030), so there the distributions: mean KL measured 3e-7 to 1.1e-6.
    if (!d.empty()) EXPECT_LT(max_abs, 1e-2) << d;
    EXPECT_GE(a.top1, 0.97) << d;
    EXPECT_LT(a.mean_kl, 1e-5) << d;
  }
  const auto saved = int64_t(std::filesystem::file_size(f16)) - int64_t(std::filesystem::file_size(q8));
  EXPECT_NEAR(double(saved), double(expert_values) * (2.0 - 34.0 / 32.0), 4096.0) << "alignment padding at most";
}

// gemkit-run --perplexity (runtime/perplexity.h): the documents of a JSONL file framed and
// windowed as gemkit eval frames them, scored on an f32 export, against the NLL of the same
// windows from the LibTorch model (measured: the means agree to 6 decimals, 6.499415; bound 1e-4).
TEST(Runtime, PerplexityScoresDocumentsAsTheLibTorchModel) {
  const std::string dir = test::temp_folder("gemkit_runtime", "perplexity");
  Pretrained pre = load_pretrained(kBase);
  GgufExportOptions o;
  o.tokenizer_folder = kBase;
  export_gguf(pre.model, o, dir + "/f32.gguf");
  {
    std::ofstream f(dir + "/docs.jsonl");
    f << R"({"id": "a", "text": "The court held that the contract was void.\nIt said so twice: \"void\"."})" << "\n\n"
      << R"({"text": "Caf\u00e9 prices rose \ud83d\ude00 in the third quarter, the report said, and costs fell.", "id": "b"})" << "\n";
  }
  const auto docs = runtime::read_documents(dir + "/docs.jsonl");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], "The court held that the contract was void.\nIt said so twice: \"void\".");
  EXPECT_EQ(docs[1], "Caf\xc3\xa9 prices rose \xf0\x9f\x98\x80 in the third quarter, the report said, and costs fell.");

  runtime::Model rm(dir + "/f32.gguf");
  const int64_t window = 9;  // several windows per document
  const runtime::PerplexityResult r = runtime::perplexity(rm, docs, window, 1);
  double nll = 0;
  int64_t tokens = 0;
  const Tokenizer& tok = rm.tokenizer();
  for (const std::string& d : docs) {
    std::vector<int32_t> ids;
    if (tok.special().add_bos) ids.push_back(tok.special().bos);
    for (int32_t t : tok.encode(d, false)) ids.push_back(t);
    ids.push_back(tok.special().eos);
    for (size_t start = 0; start + 1 < ids.size(); start += size_t(window - 1)) {
      const std::vector<int32_t> w(ids.begin() + std::ptrdiff_t(start),
                                   ids.begin() + std::ptrdiff_t(std::min(ids.size(), start + size_t(window))));
      const torch::Tensor logp = torch::log_softmax(torch_logits(pre.model, w).to(torch::kDouble), -1);
      for (size_t t = 0; t + 1 < w.size(); ++t, ++tokens) nll -= logp[int64_t(t)][w[t + 1]].item<double>();
    }
  }
  EXPECT_EQ(r.documents, 2);
  EXPECT_EQ(r.tokens, tokens);
  EXPECT_GT(tokens, 3 * window);
  std::printf("runtime perplexity: mean NLL %.6f, LibTorch %.6f over %lld tokens\n", r.mean_nll(), nll / double(tokens),
              (long long)tokens);
  EXPECT_NEAR(r.mean_nll(), nll / double(tokens), 1e-4);
  // max_tokens stops after the document that reaches it.
  EXPECT_EQ(runtime::perplexity(rm, docs, window, 1, 5).documents, 1);
  std::ofstream(dir + "/bad.jsonl") << R"({"id": "a", "text": "ok"})" << "\n" << R"({"id": "b"})" << "\n";
  test::expect_error([&] { runtime::read_documents(dir + "/bad.jsonl"); }, {"bad.jsonl", "line 2", "\"text\""});
}
