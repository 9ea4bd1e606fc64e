// gemkit's edge runtime (runtime/) against gemkit's LibTorch model on the same exported files:
// logits within stated bounds for F32, Q8_0, Q4_0 and hybrid llama GGUF files, and for the
// compact format with token routing the same routing decisions as the LibTorch threshold rule.
// Also: the AVX2 kernels against the portable ones, and loader errors for malformed files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <tuple>

#include "core/error.h"
#include "export/compact_export.h"
#include "export/gguf_export.h"
#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "logits_test_util.h"
#include "model/checkpoint.h"
#include "quant/qat.h"
#include "routing/gem_modules.h"
#include "runtime/gemkit_runtime.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
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

TEST(RuntimeKernels, SimdKernelsEqualPortable) {
  std::vector<const runtime::Kernels*> simd;
  if (runtime::cpu_has_avx2()) simd.push_back(runtime::avx2_kernels());
  if (runtime::cpu_has_avx512()) simd.push_back(runtime::avx512_kernels());
  if (runtime::cpu_has_avx512_vnni()) simd.push_back(runtime::avx512_vnni_kernels());
  // The run-time choice: the widest set the CPU has.
  EXPECT_STREQ(runtime::kernels().name, simd.empty() ? "portable" : simd.back()->name);
  for (const runtime::Kernels* avx2 : simd) {
  SCOPED_TRACE(avx2->name);
  const runtime::Kernels& p = runtime::portable_kernels();
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t n = 32 * (1 + trial % 24);
    std::vector<float> x(static_cast<size_t>(n)), w(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng) * (trial % 5 == 0 ? 1e-3f : 3.f);
    for (auto& v : w) v = nd(rng);
    x[0] = 2.5f * (float(n) / 64);  // a tie for the activation rounding
    std::vector<runtime::BlockQ8> xa(static_cast<size_t>(n / 32)), xp(static_cast<size_t>(n / 32));
    avx2->quantize_q8(x.data(), xa.data(), n);
    p.quantize_q8(x.data(), xp.data(), n);
    ASSERT_EQ(std::memcmp(xa.data(), xp.data(), xa.size() * sizeof(runtime::BlockQ8)), 0) << "trial " << trial;
    std::vector<uint8_t> q8(quant_row_bytes(QuantType::Q8_0, n)), q4(quant_row_bytes(QuantType::Q4_0, n)),
        f16(quant_row_bytes(QuantType::F16, n));
    quantize_row(QuantType::Q8_0, w.data(), n, q8.data());
    quantize_row(QuantType::Q4_0, w.data(), n, q4.data());
    quantize_row(QuantType::F16, w.data(), n, f16.data());
    const auto close = [](float a, float b) { return std::fabs(a - b) <= 1e-4f * (1 + std::fabs(b)); };
    EXPECT_TRUE(close(avx2->dot_q8_0(q8.data(), xp.data(), n), p.dot_q8_0(q8.data(), xp.data(), n)));
    EXPECT_TRUE(close(avx2->dot_q4_0(q4.data(), xp.data(), n), p.dot_q4_0(q4.data(), xp.data(), n)));
    EXPECT_TRUE(close(avx2->dot_f16(f16.data(), x.data(), n), p.dot_f16(f16.data(), x.data(), n)));
    EXPECT_TRUE(close(avx2->dot_f32(w.data(), x.data(), n), p.dot_f32(w.data(), x.data(), n)));
    if (avx2->dot4_q4_0) {
      // Four rows at once equal four single rows (rows = the same row shifted by one block).
      std::vector<uint8_t> q4x4(q4.size() * 4), q8x4(q8.size() * 4);
      for (int r = 0; r < 4; ++r) {
        std::vector<float> wr(w);
        std::rotate(wr.begin(), wr.begin() + 32 * r % n, wr.end());
        quantize_row(QuantType::Q4_0, wr.data(), n, q4x4.data() + r * q4.size());
        quantize_row(QuantType::Q8_0, wr.data(), n, q8x4.data() + r * q8.size());
      }
      float four[4];
      avx2->dot4_q4_0(q4x4.data(), q4.size(), xp.data(), n, four);
      for (int r = 0; r < 4; ++r) EXPECT_TRUE(close(four[r], p.dot_q4_0(q4x4.data() + r * q4.size(), xp.data(), n))) << r;
      avx2->dot4_q8_0(q8x4.data(), q8.size(), xp.data(), n, four);
      for (int r = 0; r < 4; ++r) EXPECT_TRUE(close(four[r], p.dot_q8_0(q8x4.data() + r * q8.size(), xp.data(), n))) << r;
    }
  }
  }
}

// The matrix kernels (a tile of weight rows x tokens) of every set this CPU runs (AVX2: 4 x 2
// tiles; AVX-512 VNNI: 4 x 4) against the portable dot product of every pair: row and token
// counts around the tiles (ragged edges), row lengths of 1 to 12 block pairs, and more than one
// 64-token chunk. The int8 sums are exact; only the float accumulation order differs (bound:
// 4e-6 of the sum of the blocks' |terms|; measured: AVX2 1.2e-6, VNNI 1.0e-6, printed).
static void expect_matrix_kernels_equal_dot_products(const runtime::Kernels& v) {
  const runtime::Kernels& p = runtime::portable_kernels();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  double worst = 0;
  for (const auto& [rows, tokens, pairs] : {std::tuple{1, 1, 1}, {4, 1, 9}, {7, 3, 12}, {9, 5, 2}, {13, 70, 3}, {4, 4, 24}}) {
    const int64_t n = 64 * pairs;
    std::vector<float> w(size_t(rows * n)), x(size_t(tokens * n));
    for (auto& f : w) f = nd(rng);
    for (auto& f : x) f = nd(rng) * 2.f;
    std::vector<runtime::BlockQ8> xq(size_t(tokens * n / 32));
    std::vector<runtime::ActPair> xp(size_t(tokens * pairs));
    for (int64_t t = 0; t < tokens; ++t) {
      p.quantize_q8(x.data() + t * n, xq.data() + t * n / 32, n);
      runtime::make_act_pairs(xq.data() + t * n / 32, n / 32, xp.data() + t * pairs);
    }
    for (const QuantType type : {QuantType::Q4_0, QuantType::Q8_0}) {
      const size_t row_bytes = quant_row_bytes(type, n);
      std::vector<uint8_t> q(row_bytes * size_t(rows));
      for (int64_t r = 0; r < rows; ++r) quantize_row(type, w.data() + r * n, n, q.data() + size_t(r) * row_bytes);
      std::vector<float> y(size_t(tokens * rows), NAN);
      (type == QuantType::Q4_0 ? v.gemm_q4_0 : v.gemm_q8_0)(q.data(), row_bytes, rows, xp.data(), tokens, pairs, y.data(), rows);
      const auto dot = type == QuantType::Q4_0 ? p.dot_q4_0 : p.dot_q8_0;
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          const uint8_t* row = q.data() + size_t(r) * row_bytes;
          const runtime::BlockQ8* xt = xq.data() + t * n / 32;
          // Float sums in another order differ by a few ulp of the terms' magnitude: the bound is
          // relative to the sum of the blocks' |terms|, not to the (possibly cancelled) result.
          double magnitude = 0;
          for (int64_t b = 0; b < n / 32; ++b) magnitude += std::fabs(dot(row + size_t(b) * row_bytes / size_t(n / 32), xt + b, 32));
          const float want = dot(row, xt, n), got = y[size_t(t * rows + r)];
          worst = std::max(worst, double(std::fabs(got - want)) / magnitude);
          ASSERT_LE(std::fabs(got - want), 4e-6 * magnitude) << "rows " << rows << " tokens " << tokens << " pairs " << pairs
                                                             << " at token " << t << " row " << r << ": " << got << " vs " << want;
        }
    }
  }
  std::printf("%s matrix kernels vs portable dot products: largest relative difference %.2e\n", v.name, worst);
}

TEST(RuntimeKernels, MatrixKernelsEqualDotProducts) {
  if (!runtime::cpu_has_avx2()) {  // then none may be chosen
    EXPECT_EQ(runtime::kernels().gemm_q4_0, nullptr);
    return;
  }
  expect_matrix_kernels_equal_dot_products(*runtime::avx2_kernels());
  if (runtime::cpu_has_avx512_vnni()) expect_matrix_kernels_equal_dot_products(*runtime::avx512_vnni_kernels());
}

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
  export_compact(dir, "", QuantPolicy(), file, false);

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
  GemConfig g;
  g.scar = true;
  g.scar_options.experts = {"law", "finance"};
  g.scar_options.blocks = {1, 2};
  g.scar_options.rank = 4;
  g.scar_options.alpha = 8;
  g.scar_options.router.router_dim = 16;
  g.scar_options.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  g.dtr = true;
  g.dtr_blocks = {2};
  g.dtr_options.initial_bias = 0.0;
  GemModules gem(m, g);
  save_routed(dir, m, gem);
  const std::string file = dir + "/scar.gguf";
  export_compact(dir, "", QuantPolicy(), file, false);
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

TEST(Runtime, MalformedFilesAreNamedErrors) {
  const std::string dir = test::temp_folder("gemkit_runtime", "bad");
  Pretrained pre = load_pretrained(kBase);
  GgufExportOptions o;
  o.tokenizer_folder = kBase;
  o.policy = QuantPolicy::hybrid();
  export_gguf(pre.model, o, dir + "/ok.gguf");
  std::ifstream in(dir + "/ok.gguf", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::string& name, const std::string& b) {
    std::ofstream(dir + "/" + name, std::ios::binary) << b;
    return dir + "/" + name;
  };
  auto message = [](const std::string& path) {
    char err[512] = {0};
    gk_model* m = gk_model_load(path.c_str(), err, sizeof err);
    if (m) gk_model_free(m);
    return m ? std::string("loaded") : std::string(err);
  };
  EXPECT_NE(message(write("cut.gguf", bytes.substr(0, bytes.size() - 1000))).find("cut.gguf"), std::string::npos);
  std::string magic = bytes;
  magic[0] = 'X';
  EXPECT_NE(message(write("magic.gguf", magic)).find("magic"), std::string::npos);
  EXPECT_NE(message(dir + "/missing.gguf").find("missing.gguf"), std::string::npos);
  GgufWriter w;
  w.set_string("general.architecture", "gemkit");
  w.set_u32("gemkit.format_version", 3);
  w.write(dir + "/v2.gguf", false);
  {
    // A tensor with no dims (fuzzer finding: its dims were read past the end). GgufWriter will not
    // write one, so the file is put together by hand: GGUF v3, 7 keys, 2 tensors.
    std::string g("GGUF");
    const auto u32 = [&](uint32_t v) { g.append(reinterpret_cast<const char*>(&v), 4); };
    const auto u64 = [&](uint64_t v) { g.append(reinterpret_cast<const char*>(&v), 8); };
    const auto str = [&](const std::string& v) { u64(v.size()), g += v; };
    u32(3), u64(2), u64(7);
    str("general.architecture"), u32(8), str("llama");
    for (const char* k : {"llama.embedding_length", "llama.feed_forward_length", "llama.context_length"}) str(k), u32(4), u32(32);
    str("llama.block_count"), u32(4), u32(1);
    str("llama.attention.head_count"), u32(4), u32(1);
    str("general.alignment"), u32(4), u32(32);
    str("token_embd.weight"), u32(2), u64(32), u64(8), u32(0), u64(0);
    str("output_norm.weight"), u32(0), u32(0), u64(1024);
    g.resize((g.size() + 31) / 32 * 32, '\0');
    g.resize(g.size() + 1024 + 64, '\0');
    write("nodims.gguf", g);
    EXPECT_NE(message(dir + "/nodims.gguf").find("tensor output_norm.weight: expected 1 or 2 dims, got 0"), std::string::npos)
        << message(dir + "/nodims.gguf");
  }
  const std::string v2 = message(dir + "/v2.gguf");
  EXPECT_NE(v2.find("format_version"), std::string::npos) << v2;
  EXPECT_NE(v2.find("newer gemkit"), std::string::npos) << v2;
  EXPECT_EQ(message(dir + "/ok.gguf"), "loaded");
}

// The compact format's own keys have no defaults: a file without one is refused, naming the file
// and the key (the DTR keys always; SCAR's when gemkit.scar.experts is there).
TEST(Runtime, CompactKeysAreRequired) {
  const std::string dir = test::temp_folder("gemkit_runtime", "keys");
  auto compact = [](GgufWriter& w) {
    w.set_string("general.architecture", "gemkit");
    w.set_u32("gemkit.format_version", 2);
    for (const char* k : {"gemkit.embedding_length", "gemkit.feed_forward_length", "gemkit.context_length"}) w.set_u32(k, 32);
    w.set_u32("gemkit.block_count", 1);
    w.set_u32("gemkit.attention.head_count", 1);
  };
  GgufWriter no_dtr;
  compact(no_dtr);
  no_dtr.write(dir + "/no_dtr.gguf", false);
  test::expect_error([&] { runtime::Model m(dir + "/no_dtr.gguf"); }, {dir + "/no_dtr.gguf", "gemkit.dtr.threshold: missing"});
  GgufWriter no_mass;
  compact(no_mass);
  no_mass.set_f32("gemkit.dtr.threshold", 0.5f);
  no_mass.set_bool("gemkit.dtr.attention_only", false);
  no_mass.set_strings("gemkit.scar.experts", {"general", "law"});
  no_mass.set_bool("gemkit.scar.general_expert", true);
  no_mass.set_f32("gemkit.scar.scale", 2.f);
  no_mass.set_u32("gemkit.scar.router_dim", 8);
  no_mass.set_f32("gemkit.scar.temperature", 1.f);
  no_mass.set_u32("gemkit.scar.max_experts", 2);
  no_mass.write(dir + "/no_mass.gguf", false);
  test::expect_error([&] { runtime::Model m(dir + "/no_mass.gguf"); }, {dir + "/no_mass.gguf", "gemkit.scar.mass: missing"});
}
