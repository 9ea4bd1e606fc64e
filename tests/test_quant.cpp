// Block quantization (formats/block_quant.h), fake quantization (quant/fake_quant.h), the type
// policy, QAT hooks and the GGUF export invariant: what the exported file holds, dequantized,
// is exactly what training computed with.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "export/gguf_export.h"
#include "formats/block_quant.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/llama_tensor_names.h"
#include "formats/quant_policy.h"
#include "model/checkpoint.h"
#include "model/gguf_model.h"
#include "quant/fake_quant.h"
#include "quant/qat.h"
#include "test_util.h"
#include "tokenizer_test_util.h"
#include "tokenizers/tokenizer.h"

using namespace gemkit;
using namespace gemkit::test;

namespace {

uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// Rows that exercise the rounding rules: random scales over many orders of magnitude, exact
// ties (x * id landing on .5), all-zero blocks, equal magnitudes of both signs, one outlier,
// subnormal-scale blocks (fp16 d underflows) and huge ones (fp16 d overflows to inf).
torch::Tensor hard_rows(uint64_t seed, int64_t rows, int64_t cols) {
  torch::Generator gen = torch::make_generator<torch::CPUGeneratorImpl>(seed);
  torch::Tensor w = torch::randn({rows, cols}, gen);
  std::mt19937_64 rng(seed);
  for (int64_t r = 0; r < rows; ++r) {
    auto row = w[r];
    const double scale = std::pow(10.0, std::uniform_real_distribution<double>(-6, 3)(rng));
    row.mul_(scale);
    switch (r % 8) {
      case 0: row.narrow(0, 0, 32).zero_(); break;
      case 1: row.narrow(0, 0, 32).copy_(torch::arange(-16, 16).to(torch::kFloat) * 0.5); break;  // ties
      case 2: row[3] = 7.0; row[9] = -7.0; break;                                               // equal magnitudes
      case 3: row[5] = 1e3 * scale; break;                                                      // outlier
      case 4: row.narrow(0, 0, 32).mul_(1e-30); break;                                          // fp16 d underflow
      case 5: row.narrow(0, 0, 32).fill_(-2.0); break;                                          // constant negative
      case 6: row.narrow(0, 32, 32).mul_(1e-38 / scale); break;                                 // 1/d overflows
      default: break;
    }
  }
  return w;
}

torch::Tensor roundtrip_with_block_quant(const torch::Tensor& w, QuantType t) {
  const torch::Tensor c = w.contiguous();
  const int64_t n = c.size(-1), rows = c.numel() / n;
  std::vector<uint8_t> packed(quant_row_bytes(t, n));
  torch::Tensor out = torch::empty_like(c);
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(t, c.data_ptr<float>() + r * n, n, packed.data());
    dequantize_row(t, packed.data(), n, out.data_ptr<float>() + r * n);
  }
  return out;
}

// Bitwise equality (NaN-free inputs): torch::equal treats -0 == +0, which is fine here.
void expect_identical(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const auto diff = (a != b);
  const int64_t bad = diff.sum().item<int64_t>();
  if (bad > 0) {
    const int64_t i = diff.flatten().nonzero()[0].item<int64_t>();
    ADD_FAILURE() << what << ": " << bad << " values differ; first at " << i << ": " << a.flatten()[i].item<float>()
                  << " vs " << b.flatten()[i].item<float>();
  }
}

}  // namespace

TEST(BlockQuant, Fp16ConversionMatchesTorchEverywhere) {
  // Every half value survives fp16 -> fp32 -> fp16 (NaNs excepted).
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t v = static_cast<uint16_t>(h);
    if ((v & 0x7c00) == 0x7c00 && (v & 0x3ff)) continue;
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(v)), v) << h;
    ASSERT_EQ(bits_of(fp16_to_fp32(v)), bits_of(torch::tensor({v}, torch::kInt32).to(torch::kInt16).view(torch::kHalf).to(torch::kFloat).item<float>()))
        << h;
  }
  // fp32 -> fp16 against torch's conversion on values spread over every exponent, including
  // subnormal halves, ties (13 dropped bits = 0x1000) and the overflow boundary.
  std::mt19937 rng(7);
  std::vector<float> xs;
  for (int i = 0; i < 200000; ++i) {
    uint32_t b = rng();
    const uint32_t exp = 100 + rng() % 50;  // 2^-27 .. 2^22
    b = (b & 0x807fffffu) | (exp << 23);
    if (i % 4 == 0) b = (b & ~0x1fffu) | 0x1000u;  // exact tie
    float x;
    std::memcpy(&x, &b, 4);
    xs.push_back(x);
  }
  for (float x : {65504.f, 65519.f, 65520.f, 65536.f, 1e-8f, 5.96e-8f, 2.98e-8f, 0.f, -0.f}) xs.push_back(x);
  const torch::Tensor t = torch::from_blob(xs.data(), {int64_t(xs.size())}, torch::kFloat).to(torch::kHalf);
  const int16_t* th = reinterpret_cast<const int16_t*>(t.data_ptr());
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(fp32_to_fp16(xs[i]), static_cast<uint16_t>(th[i])) << xs[i];
}

TEST(BlockQuant, KnownBlocksFollowLlamaCppRules) {
  // Q8_0: d = 127/127 = 1; 0.5 rounds away from zero (C roundf), unlike torch::round.
  std::vector<float> x(32, 0.f);
  x[0] = 127.f;
  x[1] = 0.5f;
  x[2] = -0.5f;
  x[3] = 2.5f;
  std::vector<uint8_t> q(34);
  quantize_row(QuantType::Q8_0, x.data(), 32, q.data());
  EXPECT_EQ(q[0] | q[1] << 8, 0x3c00);  // fp16(1.0)
  EXPECT_EQ(int8_t(q[2]), 127);
  EXPECT_EQ(int8_t(q[3]), 1);
  EXPECT_EQ(int8_t(q[4]), -1);
  EXPECT_EQ(int8_t(q[5]), 3);
  // Q4_0: the largest magnitude is -16 (first of the ties -16 / 16): d = -16 / -8 = 2.
  std::vector<float> y(32, 0.f);
  y[0] = -16.f;
  y[1] = 16.f;
  y[16] = 3.f;  // 3 / 2 + 8.5 = 10 -> nibble 10, high half of byte 0
  std::vector<uint8_t> p(18);
  quantize_row(QuantType::Q4_0, y.data(), 32, p.data());
  EXPECT_EQ(p[0] | p[1] << 8, 0x4000);  // fp16(2.0)
  EXPECT_EQ(p[2] & 0x0f, 0);   // -16 / 2 + 8.5 = 0.5 -> 0
  EXPECT_EQ(p[2] >> 4, 10);    // y[16]
  EXPECT_EQ(p[3] & 0x0f, 15);  // 16 / 2 + 8.5 = 16.5 -> min(15, 16)
  std::vector<float> back(32);
  dequantize_row(QuantType::Q4_0, p.data(), 32, back.data());
  EXPECT_EQ(back[0], -16.f);
  EXPECT_EQ(back[1], 14.f);  // the clamp: +16 is not representable
  EXPECT_EQ(back[16], 4.f);
}

TEST(BlockQuant, RowsThatDoNotFitAreNamedErrors) {
  std::vector<float> x(40);
  std::vector<uint8_t> out(100);
  expect_error([&] { quantize_row(QuantType::Q4_0, x.data(), 40, out.data()); }, {"q4_0", "40", "multiple of 32"});
  expect_error([&] { parse_quant_type("q5_k", "--quant"); }, {"--quant", "q5_k", "q8_0"});
  EXPECT_EQ(parse_quant_type("Q8_0", "x"), QuantType::Q8_0);
}

TEST(FakeQuant, EqualsThePackedRoundTripBitForBitOverManySeeds) {
  for (uint64_t seed = 0; seed < 64; ++seed) {
    const torch::Tensor w = hard_rows(seed, 24, 96);
    for (QuantType t : {QuantType::Q8_0, QuantType::Q4_0, QuantType::F16}) {
      expect_identical(quantize_dequantize(w, t), roundtrip_with_block_quant(w, t),
                       std::string(quant_type_name(t)) + " seed " + std::to_string(seed));
    }
  }
}

TEST(FakeQuant, EqualsThePackedRoundTripOnTrainedWeights) {
  const std::string base = std::string(GEMKIT_SOURCE_DIR) + "/checkpoints/gemkit-base";
  Pretrained pre = load_pretrained(base);
  int64_t checked = 0;
  for (const auto& item : pre.model->named_parameters()) {
    const torch::Tensor w = item.value().detach();
    if (w.dim() != 2 || w.size(1) % 32 != 0) continue;
    for (QuantType t : {QuantType::Q8_0, QuantType::Q4_0})
      expect_identical(quantize_dequantize(w, t), roundtrip_with_block_quant(w, t), item.key());
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

TEST(FakeQuant, StraightThroughGradientIsTheIdentity) {
  torch::Tensor w = torch::randn({8, 64}).requires_grad_(true);
  const torch::Tensor g = torch::randn({8, 64});
  for (QuantType t : {QuantType::Q8_0, QuantType::Q4_0, QuantType::F16}) {
    w.mutable_grad() = torch::Tensor();
    const torch::Tensor fq = fake_quantize(w, t);
    expect_identical(fq.detach(), quantize_dequantize(w.detach(), t), quant_type_name(t));
    EXPECT_FALSE(torch::equal(fq.detach(), w.detach()));  // it did quantize
    (fq * g).sum().backward();
    expect_identical(w.grad(), g, "gradient");
  }
  expect_error([] { fake_quantize(torch::randn({2, 48}), QuantType::Q8_0, "blk.0.w"); }, {"blk.0.w", "multiple of 32", "48"});
}

TEST(QuantPolicy, HybridTypesAndFallbacks) {
  const QuantPolicy p = QuantPolicy::hybrid();
  EXPECT_EQ(p.type_for("model.layers.3.self_attn.q_proj.weight", {256, 256}), QuantType::Q8_0);
  EXPECT_EQ(p.type_for("model.layers.3.mlp.up_proj.weight", {688, 256}), QuantType::Q4_0);
  EXPECT_EQ(p.type_for("model.layers.3.mlp.down_proj.weight", {256, 688}), QuantType::F16);  // 688 % 32 != 0
  EXPECT_EQ(p.type_for("model.embed_tokens.weight", {4096, 256}), QuantType::Q8_0);
  EXPECT_EQ(p.type_for("model.layers.3.input_layernorm.weight", {256}), QuantType::F32);
  EXPECT_EQ(p.type_for("model.norm.weight", {256}), QuantType::F32);
  const QuantPolicy custom = QuantPolicy::parse({"*.q_proj.*=f16", "*=q4_0"}, "recipe: quant.policy");
  EXPECT_EQ(custom.type_for("model.layers.0.self_attn.q_proj.weight", {64, 64}), QuantType::F16);
  EXPECT_EQ(custom.type_for("model.layers.0.self_attn.k_proj.weight", {64, 64}), QuantType::Q4_0);
  expect_error([] { QuantPolicy::parse({"*.mlp.*"}, "recipe: quant.policy"); }, {"recipe: quant.policy[0]", "NAME_PATTERN=TYPE"});
  expect_error([] { QuantPolicy::parse({"*=q3"}, "recipe: quant.policy"); }, {"quant.policy[0]", "q3"});
  EXPECT_TRUE(glob_match("a*b*c", "aXXbYc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXXbYd"));
}

TEST(Qat, HookedForwardEqualsTheModelWithQuantizedWeights) {
  ModelConfig c = tiny_decoder_config();
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.tie_word_embeddings = true;
  torch::manual_seed(3);
  Transformer model(c);
  Transformer reference(c);
  const QuantPolicy policy = QuantPolicy::hybrid();
  {
    torch::NoGradGuard no_grad;
    auto dst = reference->named_parameters();
    for (const auto& item : model->named_parameters()) {
      const QuantType t = policy.type_for(item.key(), item.value().sizes().vec());
      dst[item.key()].copy_(quantize_dequantize(item.value().detach(), t));
    }
  }
  const torch::Tensor ids = torch::randint(0, c.vocab_size, {2, 12});
  const torch::Tensor float_logits = model->forward(ids).logits.detach();
  const torch::Tensor want = reference->forward(ids).logits.detach();
  {
    Qat qat(model, {policy, false});
    EXPECT_EQ(qat.types().size(), 2u * 7u + 1u);  // 7 linears per block + the tied embedding
    expect_identical(model->forward(ids).logits.detach(), want, "fake-quantized forward");
    qat.set_enabled(false);
    expect_identical(model->forward(ids).logits.detach(), float_logits, "disabled");
    qat.set_enabled(true);
    // Gradients reach the float weights (straight through).
    model->forward(ids).logits.sum().backward();
    for (const auto& p : model->parameters()) ASSERT_TRUE(p.grad().defined());
  }
  expect_identical(model->forward(ids).logits.detach(), float_logits, "hooks removed");
}

TEST(GgufExport, PackedWeightsDequantizeToTheFakeQuantizedWeights) {
  const std::string dir = temp_folder("gemkit_quant", "export");
  ModelConfig c = tiny_decoder_config();
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.vocab_size = 4096;  // the bundled tokenizer's
  c.tie_word_embeddings = true;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    torch::manual_seed(seed);
    Transformer model(c);
    GgufExportOptions o;
    o.policy = seed % 2 ? QuantPolicy::hybrid() : QuantPolicy::uniform(QuantType::Q4_0);
    o.tokenizer_folder = std::string(GEMKIT_SOURCE_DIR) + "/checkpoints/gemkit-base";
    o.overwrite = true;
    const std::string path = dir + "/m.gguf";
    const GgufExportReport rep = export_gguf(model, o, path);
    GgufFile f(path);
    EXPECT_EQ(f.get_string("general.architecture", ""), "llama");
    EXPECT_EQ(f.get_int("llama.attention.head_count_kv", 0), 2);
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied
    EXPECT_EQ(rep.file_bytes, std::filesystem::file_size(path));
    int64_t checked = 0;
    for (const auto& item : model->named_parameters()) {
      const GgufTensorInfo* t = f.find_tensor(gguf_name_of_hf(item.key()));
      ASSERT_NE(t, nullptr) << item.key();
      const QuantType type = o.policy.type_for(item.key(), item.value().sizes().vec());
      ASSERT_EQ(t->type, static_cast<uint32_t>(type)) << item.key();
      const int64_t n = item.value().size(-1), rows = item.value().numel() / n;
      torch::Tensor file_values = torch::empty({rows, n});
      for (int64_t r = 0; r < rows; ++r)
        dequantize_row(type, f.tensor_data(*t) + r * quant_row_bytes(type, n), n, file_values.data_ptr<float>() + r * n);
      file_values = file_values.view(item.value().sizes());
      if (item.key().find("q_proj") != std::string::npos) file_values = unpermute_rope_rows(file_values, c.num_attention_heads);
      if (item.key().find("k_proj") != std::string::npos) file_values = unpermute_rope_rows(file_values, c.num_key_value_heads);
      expect_identical(file_values, fake_quantize(item.value().detach(), type), item.key());
      ++checked;
    }
    EXPECT_EQ(checked, static_cast<int64_t>(model->named_parameters().size()));
  }
  // Refuses to overwrite unless asked; the file is untouched.
  Transformer model(c);
  GgufExportOptions o;
  o.tokenizer_folder = std::string(GEMKIT_SOURCE_DIR) + "/checkpoints/gemkit-base";
  const auto before = std::filesystem::file_size(dir + "/m.gguf");
  expect_error([&] { export_gguf(model, o, dir + "/m.gguf"); }, {"m.gguf", "exists", "--force"});
  EXPECT_EQ(std::filesystem::file_size(dir + "/m.gguf"), before);
  ModelConfig biased = c;
  biased.attention_bias = true;
  expect_error([&] { export_gguf(Transformer(biased), o, dir + "/b.gguf"); }, {"attention_bias"});
}

TEST(GgufExport, RopePermutationRoundTrips) {
  const torch::Tensor w = torch::randn({8 * 16, 24});
  EXPECT_TRUE(torch::equal(unpermute_rope_rows(permute_rope_rows(w, 8), 8), w));
  // Row order of one head (head_dim 4): HF halves [a0 a1 | b0 b1] -> pairs [a0 b0 a1 b1].
  const torch::Tensor head = torch::arange(4).to(torch::kFloat).unsqueeze(1);
  EXPECT_TRUE(torch::equal(permute_rope_rows(head, 1).squeeze(1), torch::tensor({0.f, 2.f, 1.f, 3.f})));
}

TEST(GgufWriter, ReaderSeesWhatWasWritten) {
  const std::string dir = temp_folder("gemkit_quant", "writer");
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("a.u32", 7);
  w.set_f32("a.f32", 0.25f);
  w.set_bool("a.bool", true);
  w.set_strings("a.strings", {"x", "", "yz"});
  w.set_i32s("a.ints", {-1, 2});
  std::vector<float> v(64);
  for (int i = 0; i < 64; ++i) v[i] = float(i) - 20.f;
  std::vector<uint8_t> q(quant_row_bytes(QuantType::Q8_0, 64));
  quantize_row(QuantType::Q8_0, v.data(), 64, q.data());
  w.add_tensor("t.q8", {1, 64}, QuantType::Q8_0, q);
  std::vector<uint8_t> raw(3 * 4);
  w.add_tensor("t.f32", {3}, QuantType::F32, raw);
  expect_error([&] { w.add_tensor("t.bad", {2, 64}, QuantType::Q8_0, q); }, {"t.bad", "expected 136 bytes"});
  w.write(dir + "/w.gguf", false);
  GgufFile f(dir + "/w.gguf");
  EXPECT_EQ(f.get_int("a.u32", 0), 7);
  EXPECT_EQ(f.get("a.f32").as_double(), 0.25);
  EXPECT_TRUE(f.get_bool("a.bool", false));
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].dims, (std::vector<uint64_t>{64, 1}));
  EXPECT_EQ(f.tensors()[1].offset % 32, 0u);
  EXPECT_EQ(std::memcmp(f.tensor_data(f.tensors()[0]), q.data(), q.size()), 0);
  expect_error([&] { w.write(dir + "/w.gguf", false); }, {"w.gguf", "exists"});
}

TEST(GgufModel, AnExportLoadsBackAsTheFakeQuantizedModel) {
  const std::string dir = temp_folder("gemkit_quant", "import");
  ModelConfig c = tiny_decoder_config();
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.vocab_size = 4096;
  c.tie_word_embeddings = true;
  torch::manual_seed(11);
  Transformer model(c);
  GgufExportOptions o;
  o.policy = QuantPolicy::hybrid();
  o.tokenizer_folder = std::string(GEMKIT_SOURCE_DIR) + "/checkpoints/gemkit-base";
  export_gguf(model, o, dir + "/m.gguf");
  Pretrained back = load_pretrained(dir + "/m.gguf");
  EXPECT_EQ(back.config.num_key_value_heads, 2);
  EXPECT_TRUE(back.config.tie_word_embeddings);
  const torch::Tensor ids = torch::randint(0, c.vocab_size, {2, 10});
  Qat qat(model, {o.policy, false});
  expect_identical(back.model->forward(ids).logits.detach(), model->forward(ids).logits.detach(), "loaded GGUF vs QAT forward");

  // A truncated file and a foreign architecture are named errors.
  std::ifstream in(dir + "/m.gguf", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir + "/cut.gguf", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_error([&] { load_pretrained(dir + "/cut.gguf"); }, {"cut.gguf"});
  GgufWriter w;
  w.set_string("general.architecture", "gpt2");
  w.write(dir + "/gpt2.gguf", false);
  expect_error([&] { load_pretrained(dir + "/gpt2.gguf"); }, {"gpt2.gguf", "general.architecture", "llama"});
}

TEST(GgufExport, ByteLevelBpeTokenizerMetadataTokenizesLikeLlamaCpp) {
  // GPT-2's vocabulary (llama.cpp's vocab file) as a tokenizer.json in a checkpoint folder; the
  // export's tokenizer.ggml.* must reproduce llama.cpp's expected tokenizations.
  const std::string vocab = gemkit::testing::require_testdata("ggml-vocab-gpt-2.gguf");
  ASSERT_FALSE(vocab.empty());
  const std::string dir = temp_folder("gemkit_quant", "bpe");
  std::ofstream(dir + "/tokenizer.json") << gemkit::testing::bpe_json_from_gguf(vocab, "", false);
  ModelConfig c = tiny_decoder_config();
  c.vocab_size = 50257;
  c.tie_word_embeddings = true;
  GgufExportOptions o;
  o.tokenizer_folder = dir;
  export_gguf(Transformer(c), o, dir + "/m.gguf");
  GgufFile src(vocab), out(dir + "/m.gguf");
  EXPECT_EQ(out.get_string("tokenizer.ggml.model", ""), "gpt2");
  EXPECT_EQ(out.get_string("tokenizer.ggml.pre", ""), "gpt-2");
  const auto& a = src.get("tokenizer.ggml.tokens");
  const auto& b = out.get("tokenizer.ggml.tokens");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a.string_at(i), b.string_at(i)) << i;
  EXPECT_EQ(src.get("tokenizer.ggml.merges").size(), out.get("tokenizer.ggml.merges").size());
  const auto tok = load_tokenizer(dir + "/m.gguf");
  size_t ok = 0;
  const auto cases = gemkit::testing::read_vocab_cases(vocab);
  for (const auto& cs : cases) ok += tok->encode(cs.text, false) == cs.ids;
  EXPECT_EQ(ok, cases.size());
  EXPECT_GE(cases.size(), 20u);
}
