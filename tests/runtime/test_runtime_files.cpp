// The edge runtime on real files without LibTorch (also on ARM64 under qemu): tiny random llama
// GGUF files written by tests/llama_cpp/make_tiny_gguf.py (numpy, independent of gemkit's
// writer; the ctest fixture tiny_gguf_files makes them), token-by-token decoding against the
// batched pass, and the loader's errors for malformed files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"
#include "runtime/gemkit_runtime.h"
#include "runtime/model.h"
#include "test_util.h"

using namespace gemkit;

namespace {

std::string tiny_gguf(const std::string& type) { return std::string(GEMKIT_TINY_GGUF_DIR) + "/" + type + ".gguf"; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path << ": missing (made by the ctest fixture tiny_gguf_files)";
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

// Decoding token by token with the KV cache equals the batched pass over the same tokens bit for
// bit (the same kernels in the same order per row and token: the matrix kernels' 1 x 1 and
// wider tiles), with one and two threads, for every storage type of the tiny files.
TEST(RuntimeFiles, TokenByTokenEqualsBatch) {
  for (const std::string type : {"f32", "q8_0", "q4_0"}) {
    SCOPED_TRACE(type);
    runtime::Model model(tiny_gguf(type));
    const int64_t vocab = model.config().vocab;
    std::vector<int32_t> tokens{1};
    for (int i = 0; i < 23; ++i) tokens.push_back(int32_t(3 + (i * 37) % (vocab - 3)));
    for (int threads : {1, 2}) {
      runtime::Session batch(model, 24, threads), step(model, 24, threads);
      const std::vector<float> all = batch.eval(tokens, true);
      for (size_t t = 0; t < tokens.size(); ++t) {
        const std::vector<float>& one = step.eval({tokens[t]});
        ASSERT_EQ(0, std::memcmp(one.data(), all.data() + t * size_t(vocab), size_t(vocab) * 4)) << "position " << t;
      }
      test::expect_error([&] { step.eval({1}); }, {"context", "full"});
    }
  }
}

TEST(RuntimeFiles, MalformedFilesAreNamedErrors) {
  const std::string dir = test::temp_folder("gemkit_runtime", "bad");
  const std::string bytes = read_bytes(tiny_gguf("q8_0"));
  ASSERT_GT(bytes.size(), 2000u);
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
  EXPECT_EQ(message(tiny_gguf("q8_0")), "loaded");
  EXPECT_NE(message(write("cut.gguf", bytes.substr(0, bytes.size() - 1000))).find("cut.gguf"), std::string::npos);
  std::string magic = bytes;
  magic[0] = 'X';
  EXPECT_NE(message(write("magic.gguf", magic)).find("magic"), std::string::npos);
  EXPECT_NE(message(dir + "/missing.gguf").find("missing.gguf"), std::string::npos);
  GgufWriter w;
  w.set_string("general.architecture", "gemkit");
  w.set_u32("gemkit.format_version", 3);
  w.write(dir + "/v2.gguf", false);
  const std::string v2 = message(dir + "/v2.gguf");
  EXPECT_NE(v2.find("format_version"), std::string::npos) << v2;
  EXPECT_NE(v2.find("newer gemkit"), std::string::npos) << v2;
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
}

// The compact format's own keys have no defaults: a file without one is refused, naming the file
// and the key (the DTR keys always; SCAR's when gemkit.scar.experts is there).
TEST(RuntimeFiles, CompactKeysAreRequired) {
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

// The C API never lets a C++ exception out (a C or JNI caller cannot catch one): bad input to the
// functions without an error buffer returns GK_ERROR.
TEST(RuntimeFiles, CApiReturnsErrorsInsteadOfThrowing) {
  char err[256] = {0};
  gk_model* m = gk_model_load(tiny_gguf("q8_0").c_str(), err, sizeof err);
  ASSERT_NE(m, nullptr) << err;
  const int32_t bad[] = {1, gk_vocab_size(m) + 5};
  char text[64];
  EXPECT_EQ(gk_detokenize(m, bad, 2, text, sizeof text), GK_ERROR);
  int32_t ids[64];
  const int32_t n = gk_tokenize(m, "ab", 1, ids, 64);
  ASSERT_GT(n, 1);
  EXPECT_EQ(gk_tokenize(m, "ab", 1, ids, 1), -n);  // too small: the size needed
  EXPECT_EQ(gk_detokenize(m, ids, n, text, sizeof text), 2);
  EXPECT_STREQ(text, "ab");
  gk_session* s = gk_session_new(m, 4, 1, err, sizeof err);
  ASSERT_NE(s, nullptr) << err;
  EXPECT_EQ(gk_eval(s, bad, 2, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("outside the vocabulary"), std::string::npos) << err;
  gk_session_free(s);
  gk_model_free(m);
}

