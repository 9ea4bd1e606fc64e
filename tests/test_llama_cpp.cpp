// Verification against llama.cpp itself (tests/llama_cpp/, installed by install.sh from npm):
//  - gemkit's Q8_0 / Q4_0 packing equals llama.cpp's reference quantizer byte for byte;
//  - on exported F32, Q8_0, Q4_0 and hybrid files of the bundled base model, llama.cpp's
//    next-token distributions agree with gemkit's own forward on the same weights
//    (fake-quantized, with Q8_0 activations for block-quantized layers, as llama.cpp's CPU
//    path computes): top-1 agreement and mean KL(llama.cpp || gemkit) within stated bounds.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <functional>
#include <filesystem>
#include <fstream>
#include <random>

#include "export/gguf_export.h"
#include "formats/block_quant.h"
#include "logits_test_util.h"
#include "model/checkpoint.h"
#include "quant/qat.h"
#include "runtime/model.h"
#include "test_util.h"
#include "tokenizers/tokenizer.h"

using namespace gemkit;

namespace {

const std::string kSource = GEMKIT_SOURCE_DIR;
const std::string kLlama = GEMKIT_LLAMA_CPP_DIR;
const std::string kBase = kSource + "/checkpoints/gemkit-base";

void run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << cmd;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_floats(const std::string& path, const float* data, size_t n) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data), std::streamsize(n * 4));
}

// Packs rows with gemkit and with llama.cpp's reference quantizer; returns the number of rows
// whose bytes differ.
int64_t differing_rows(const std::string& dir, const torch::Tensor& rows, QuantType t) {
  const torch::Tensor w = rows.contiguous();
  const int64_t n = w.size(1);
  write_floats(dir + "/in.f32", w.data_ptr<float>(), size_t(w.numel()));
  run(kLlama + "/bin/ggml_quantize_ref " + quant_type_name(t) + " " + std::to_string(n) + " " + dir + "/in.f32 " + dir + "/out.bin 2>> " + dir + "/quantize.log");
  const std::vector<uint8_t> theirs = read_bytes(dir + "/out.bin");
  const size_t row_bytes = quant_row_bytes(t, n);
  EXPECT_EQ(theirs.size(), row_bytes * size_t(w.size(0)));
  std::vector<uint8_t> ours(row_bytes);
  int64_t bad = 0;
  for (int64_t r = 0; r < w.size(0) && size_t(r + 1) * row_bytes <= theirs.size(); ++r) {
    quantize_row(t, w.data_ptr<float>() + r * n, n, ours.data());
    bad += std::memcmp(ours.data(), theirs.data() + r * row_bytes, row_bytes) != 0;
  }
  return bad;
}

// Token sequences from the bundled mini suite's validation texts, BOS first.
std::vector<std::vector<int32_t>> prompts(const Tokenizer& tok, int64_t length) {
  std::vector<std::vector<int32_t>> out;
  for (const char* domain : {"general", "law", "stem", "healthcare", "finance", "conversational"}) {
    std::ifstream in(kSource + "/data/mini/" + domain + "/validation.jsonl");
    std::string line;
    std::getline(in, line);
    std::vector<int32_t> ids = tok.encode(nlohmann::json::parse(line).at("text").get<std::string>(), true);
    if (int64_t(ids.size()) > length) ids.resize(size_t(length));
    out.push_back(ids);
  }
  return out;
}

using test::Agreement;

// Logits [T, V] of one sequence from one of gemkit's forwards (LibTorch or gemkit-run).
using Scorer = std::function<torch::Tensor(const std::vector<int32_t>&)>;

// llama.cpp's log-probabilities for `file` against `score` (logits [T, V] of one sequence).
Agreement compare(const std::string& dir, const std::string& file, const Scorer& score,
                  const std::vector<std::vector<int32_t>>& seqs, int64_t V) {
  nlohmann::json j = {{"sequences", seqs}};
  std::ofstream(dir + "/seqs.json") << j.dump();
  run("node " + kSource + "/tests/llama_cpp/next_token_logprobs.mjs " + file + " " + dir + "/seqs.json " + dir +
      "/lp.bin --dest " + kLlama + " > " + dir + "/lp.json");
  const std::vector<uint8_t> raw = read_bytes(dir + "/lp.bin");
  int64_t positions = 0;
  std::vector<torch::Tensor> ours;
  for (const auto& s : seqs) {
    ours.push_back(score(s));
    positions += int64_t(s.size());
  }
  EXPECT_EQ(raw.size(), size_t(positions * V * 4));
  if (raw.size() != size_t(positions * V * 4)) return Agreement{};
  const torch::Tensor theirs =
      torch::from_blob(const_cast<uint8_t*>(raw.data()), {positions, V}, torch::kFloat);  // llama.cpp's log-probs
  return test::agreement(theirs, torch::cat(ours));
}

Scorer libtorch_scorer(Transformer model) {
  return [model](const std::vector<int32_t>& s) { return test::torch_logits(model, s); };
}

Scorer runtime_scorer(const std::string& file) {
  auto m = std::make_shared<runtime::Model>(file);
  return [m](const std::vector<int32_t>& s) { return test::runtime_logits(*m, s); };
}

}  // namespace

TEST(LlamaCpp, QuantizerPacksLikeGemkitByteForByte) {
  const std::string dir = test::temp_folder("gemkit_llama", "quant");
  // Random rows over many scales, ties, zeros, equal magnitudes of both signs.
  torch::Generator gen = torch::make_generator<torch::CPUGeneratorImpl>(5);
  torch::Tensor rows = torch::randn({4096, 64}, gen) * torch::pow(10.0, torch::rand({4096, 1}, gen) * 8 - 5);
  rows.narrow(0, 0, 64).zero_();
  rows.narrow(0, 64, 64).copy_((torch::randint(-40, 40, {64, 64}, gen) * 0.5).to(torch::kFloat));  // ties
  rows.narrow(0, 128, 64).select(1, 7).fill_(3.0);
  rows.narrow(0, 128, 64).select(1, 9).fill_(-3.0);
  rows.narrow(0, 192, 64).copy_(torch::randn({64, 64}, gen) * 1e-38);  // 1/d overflows: x86 gives zeros
  for (QuantType t : {QuantType::Q8_0, QuantType::Q4_0}) EXPECT_EQ(differing_rows(dir, rows, t), 0) << quant_type_name(t);
  // The trained base model's weights.
  Pretrained pre = load_pretrained(kBase);
  for (const auto& item : pre.model->named_parameters()) {
    const torch::Tensor w = item.value().detach();
    if (w.dim() != 2 || w.size(1) % 32 != 0) continue;
    for (QuantType t : {QuantType::Q8_0, QuantType::Q4_0})
      EXPECT_EQ(differing_rows(dir, w, t), 0) << item.key() << " " << quant_type_name(t);
  }
}

// Bounds, stated here and in docs/quantization.md. Measured on the bundled base model (576
// positions, 2-core AMD EPYC, llama.cpp's prebuilt CPU build): F32 top-1 100%, mean KL 1e-12;
// Q8_0 / Q4_0 / hybrid top-1 99.5-100%, mean KL 5-7e-6, max KL 7e-5. The quantized files are not
// bit-identical to gemkit's reference forward: llama.cpp's SIMD path rounds activations half to
// even (gemkit's fake quant uses the reference quantizer's half-away) and accumulates in another
// order. The bounds keep a margin of about 10x over the measured KL for other CPUs' SIMD paths,
// and are far stricter than the F32 bound (top-1 >= 99%, mean KL < 1e-3).
struct Case {
  const char* name;
  QuantPolicy policy;
  double min_top1, max_mean_kl;
};

TEST(LlamaCpp, NextTokenDistributionsAgreeWithGemkit) {
  const std::string dir = test::temp_folder("gemkit_llama", "agree");
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(kBase);
  const auto seqs = prompts(*tok, 96);
  const std::vector<Case> cases = {
      {"f32", QuantPolicy(), 0.99, 1e-5},
      {"q8_0", QuantPolicy::uniform(QuantType::Q8_0), 0.98, 1e-4},
      {"q4_0", QuantPolicy::uniform(QuantType::Q4_0), 0.98, 1e-4},
      {"hybrid", QuantPolicy::hybrid(), 0.98, 1e-4},
  };
  for (const Case& c : cases) {
    Pretrained pre = load_pretrained(kBase);
    GgufExportOptions o;
    o.policy = c.policy;
    o.tokenizer_folder = kBase;
    const std::string file = dir + "/base-" + c.name + ".gguf";
    export_gguf(pre.model, o, file);
    std::unique_ptr<Qat> qat;
    if (!c.policy.rules().empty()) qat = std::make_unique<Qat>(pre.model, QatOptions{c.policy, true});
    const int64_t V = pre.config.vocab_size;
    const Agreement a = compare(dir, file, libtorch_scorer(pre.model), seqs, V);
    std::printf("llama.cpp vs gemkit, %-6s: %lld positions, top-1 %.4f, mean KL %.3g, max KL %.3g\n", c.name,
                (long long)a.positions, a.top1, a.mean_kl, a.max_kl);
    EXPECT_GE(a.top1, c.min_top1) << c.name;
    EXPECT_LT(a.mean_kl, c.max_mean_kl) << c.name;
    // gemkit's own runtime on the same file (its kernels follow llama.cpp's: Q8_0 activations
    // rounded half to even), same bounds.
    const Agreement r = compare(dir, file, runtime_scorer(file), seqs, V);
    std::printf("llama.cpp vs gemkit-run, %-6s: %lld positions, top-1 %.4f, mean KL %.3g, max KL %.3g\n", c.name,
                (long long)r.positions, r.top1, r.mean_kl, r.max_kl);
    EXPECT_GE(r.top1, c.min_top1) << c.name << " (runtime)";
    EXPECT_LT(r.mean_kl, c.max_mean_kl) << c.name << " (runtime)";
  }
}
