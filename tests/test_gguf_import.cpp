// `gemkit import gguf` (import/gguf_import.h) on tiny files written by gemkit's GGUF writer: what
// the importer refuses, and that a padded embedding table is fine. Numerics against the `gguf`
// package and transformers are checked on a real file by tests/reference (dequant_parity,
// hf_numerics).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "formats/model_config.h"
#include "import/gguf_import.h"
#include "tokenizers/tokenizer.h"
#include "test_util.h"

using namespace gemkit;
using gemkit::test::error_of;

namespace {

// A one-layer llama model (hidden 8, 2 heads, 1 KV head, FFN 16) whose embedding has `rows` rows,
// with a five-piece SentencePiece vocabulary (or, given `bpe_tokens`, a byte-level BPE one of those
// tokens, the last "<|endoftext|>"), and the string keys `strings`.
std::string tiny_llama(const std::string& path, int64_t rows, const std::map<std::string, std::string>& strings = {},
                       const std::vector<std::string>& bpe_tokens = {}) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  for (const auto& [key, value] : strings) w.set_string(key, value);
  w.set_u32("llama.context_length", 64);
  w.set_u32("llama.embedding_length", 8);
  w.set_u32("llama.feed_forward_length", 16);
  w.set_u32("llama.block_count", 1);
  w.set_u32("llama.attention.head_count", 2);
  w.set_u32("llama.attention.head_count_kv", 1);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  if (bpe_tokens.empty()) {
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "b"});
    w.set_f32s("tokenizer.ggml.scores", {0, 0, 0, -1, -2});
    w.set_i32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  } else {
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "smollm");
    w.set_strings("tokenizer.ggml.tokens", bpe_tokens);
    std::vector<int32_t> types(bpe_tokens.size(), 1);
    types.back() = 3;
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_strings("tokenizer.ggml.merges", {"h e"});
    w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(bpe_tokens.size() - 1));
    w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(bpe_tokens.size() - 1));
  }
  const auto f32 = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<uint8_t> data(size_t(n) * 4, 0);
    w.add_tensor(name, shape, QuantType::F32, std::move(data));
  };
  f32("token_embd.weight", {rows, 8});
  f32("output_norm.weight", {8});
  f32("blk.0.attn_norm.weight", {8});
  f32("blk.0.ffn_norm.weight", {8});
  f32("blk.0.attn_q.weight", {8, 8});
  f32("blk.0.attn_k.weight", {4, 8});
  f32("blk.0.attn_v.weight", {4, 8});
  f32("blk.0.attn_output.weight", {8, 8});
  f32("blk.0.ffn_gate.weight", {16, 8});
  f32("blk.0.ffn_up.weight", {16, 8});
  f32("blk.0.ffn_down.weight", {8, 16});
  w.write(path, true);
  return path;
}

}  // namespace

// A padded table (more rows than tokens, as real files round up to 64 or 128) imports with
// vocab_size = rows; fewer rows than tokens (fuzzer finding: the imported tokenizer handed out
// ids past the table) is refused, naming the key and both counts, and leaves nothing behind.
TEST(GgufImport, TokenListMustFitTheEmbeddingTable) {
  const std::string dir = gemkit::test::temp_folder("import", "vocab");
  const GgufImportReport ok = import_gguf(tiny_llama(dir + "/padded.gguf", 8), dir + "/padded", {});
  EXPECT_EQ(ok.architecture, "llama");
  EXPECT_EQ(ModelConfig::load(dir + "/padded/config.json").vocab_size, 8);

  const std::string bad = tiny_llama(dir + "/short.gguf", 4);
  const std::string e = error_of([&] { import_gguf(bad, dir + "/short", {}); });
  for (const char* part : {"short.gguf", "tokenizer.ggml.tokens", "5 tokens", "token_embd.weight has only 4 rows"})
    EXPECT_NE(e.find(part), std::string::npos) << part << " not in: " << e;
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"padded", "padded.gguf", "short.gguf"}));
}

// Text that goes into the imported folder's JSON files must be UTF-8 (fuzzer finding: a chat
// template with a stray byte ended the import in the JSON writer's own exception, naming neither
// the file nor the key). Refused, naming both and the byte, with nothing left behind.
TEST(GgufImport, TextKeysMustBeUtf8) {
  const std::string dir = gemkit::test::temp_folder("import", "utf8");
  const std::string template_file =
      tiny_llama(dir + "/template.gguf", 5, {{"tokenizer.chat_template", "{% for m in mess\xa4ges %}"}});
  std::string e = error_of([&] { import_gguf(template_file, dir + "/template", {}); });
  for (const char* part : {"template.gguf: tokenizer.chat_template", "byte 0xA4 at offset 16"})
    EXPECT_NE(e.find(part), std::string::npos) << part << " not in: " << e;
  const std::string name_file = tiny_llama(dir + "/name.gguf", 5, {{"general.name", "tiny \xc3("}});
  e = error_of([&] { import_gguf(name_file, dir + "/name", {}); });
  for (const char* part : {"name.gguf: general.name", "byte 0xC3 at offset 5"})
    EXPECT_NE(e.find(part), std::string::npos) << part << " not in: " << e;
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"name.gguf", "template.gguf"}));
}

// A byte-level BPE token list that repeats a token (fuzzer finding): the imported tokenizer.json
// keeps the first id and leaves the repeat's id without an entry, and the folder loads again
// (the reader refused ids past the entries); the special token after the gap keeps its id.
TEST(GgufImport, RepeatedBpeTokenLeavesAGapThatLoads) {
  const std::string dir = gemkit::test::temp_folder("import", "repeat");
  const std::vector<std::string> tokens{"h", "e", "t", "\xc4\xa0", "he", "t", "<|endoftext|>"};  // "t" twice
  import_gguf(tiny_llama(dir + "/repeat.gguf", 8, {}, tokens), dir + "/repeat", {});
  std::unique_ptr<Tokenizer> tok = load_tokenizer(dir + "/repeat");
  EXPECT_EQ(tok->encode("the", false), (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(tok->special().eos, 6);
  EXPECT_EQ(tok->decode({2, 4, 6}, false), "the<|endoftext|>");
}
