// Tokenizer conformance against llama.cpp's published cases (vocab-only GGUF files with
// expected ids), GPT-2's original encoder files, tokenizer.json / vocab.txt loaders, the GGUF
// reader, SentencePiece training, and malformed inputs.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/file_io.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer_test_util.h"
#include "tokenizers/pretokenizer.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_loaders.h"
#include "tokenizers/tokenizer_train.h"

using namespace gemkit;
using namespace gemkit::testing;
using gemkit::test::error_of;

namespace {

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += static_cast<char>(c);
  }
  return out;
}

// Runs every case of a llama.cpp vocabulary; returns the number that match.
size_t run_cases(const Tokenizer& tok, const std::vector<VocabCase>& cases, const std::string& name) {
  size_t ok = 0;
  for (const auto& c : cases) {
    // llama.cpp's test-tokenizer-0 tokenizes with add_special=false, parse_special=false.
    const auto got = tok.encode(c.text, /*add_special=*/false);
    if (got == c.ids) ++ok;
    else
      ADD_FAILURE() << name << ": \"" << escape(c.text) << "\"\n  expected " << ids_str(c.ids)
                    << "\n  got      " << ids_str(got);
  }
  std::printf("[ conformance ] %-12s %zu/%zu cases\n", name.c_str(), ok, cases.size());
  return ok;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "gemkit_tok_" + std::to_string(::getpid()) + "_" + name;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

// ------------------------------------------------------------------ llama.cpp conformance

class LlamaVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaVocab, MatchesLlamaCppExpectedIds) {
  const std::string path = require_testdata("ggml-vocab-" + GetParam() + ".gguf");
  ASSERT_FALSE(path.empty());
  const auto cases = read_vocab_cases(path);
  ASSERT_GT(cases.size(), 30u);
  auto tok = load_tokenizer(path);
  EXPECT_EQ(run_cases(*tok, cases, GetParam()), cases.size());
}

TEST_P(LlamaVocab, DecodeInvertsEncode) {
  const std::string path = require_testdata("ggml-vocab-" + GetParam() + ".gguf");
  ASSERT_FALSE(path.empty());
  auto tok = load_tokenizer(path);
  if (tok->kind() == "wordpiece") {
    // WordPiece lowercases and drops accents and whitespace: decode is not an inverse.
    EXPECT_EQ(tok->decode(tok->encode("Hello, world! Don't panic.", false)), "hello, world! don't panic.");
    return;
  }
  for (const auto& c : read_vocab_cases(path)) {
    const std::string got = tok->decode(tok->encode(c.text, false));
    if (tok->kind().rfind("sentencepiece", 0) == 0) {
      // SentencePiece's decoder drops the dummy-prefix space of the first piece, and of each
      // following piece until some text is produced (SentencePieceProcessor::Decode does the
      // same): only leading spaces may be lost.
      const size_t lead = c.text.find_first_not_of(' ');
      const bool ok = got == c.text ||
                      (c.text.size() >= got.size() && c.text.compare(c.text.size() - got.size(), got.size(), got) == 0 &&
                       (lead == std::string::npos || c.text.size() - got.size() <= lead));
      EXPECT_TRUE(ok) << GetParam() << ": \"" << escape(c.text) << "\" decoded as \"" << escape(got) << "\"";
    } else {
      EXPECT_EQ(got, c.text) << GetParam() << ": " << escape(c.text);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaVocab,
                         ::testing::Values("llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2", "mpt",
                                           "bert-bge"),
                         vocab_param_name);

TEST(Tokenizers, KindsAndSpecialTokens) {
  struct Expect {
    const char* vocab;
    const char* kind;
  } expects[] = {{"llama-spm", "sentencepiece-bpe"}, {"llama-bpe", "byte-level-bpe"},
                 {"qwen2", "byte-level-bpe"}, {"gpt-2", "byte-level-bpe"}, {"bert-bge", "wordpiece"}};
  for (const auto& e : expects) {
    const std::string path = require_testdata(std::string("ggml-vocab-") + e.vocab + ".gguf");
    ASSERT_FALSE(path.empty());
    auto tok = load_tokenizer(path);
    EXPECT_EQ(tok->kind(), e.kind) << e.vocab;
  }
  auto spm = load_tokenizer(require_testdata("ggml-vocab-llama-spm.gguf"));
  EXPECT_EQ(spm->vocab_size(), 32000);
  EXPECT_EQ(spm->special().bos, 1);
  EXPECT_EQ(spm->special().eos, 2);
  EXPECT_EQ(spm->encode("Hello world", true), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(spm->token_text(15043), "\xe2\x96\x81Hello");
  EXPECT_EQ(spm->decode({1, 15043, 3186, 2}), "Hello world");
  EXPECT_EQ(spm->decode({1, 15043, 3186, 2}, false), "<s> Hello world</s>");

  auto llama3 = load_tokenizer(require_testdata("ggml-vocab-llama-bpe.gguf"));
  EXPECT_EQ(llama3->encode("Hello world", true), (std::vector<int32_t>{128000, 9906, 1917}));
  EXPECT_EQ(llama3->decode({128000, 9906, 1917}), "Hello world");

  auto bert = load_tokenizer(require_testdata("ggml-vocab-bert-bge.gguf"));
  const auto ids = bert->encode("Hello world", true);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(bert->token_text(ids.front()), "[CLS]");
  EXPECT_EQ(bert->token_text(ids.back()), "[SEP]");
  EXPECT_EQ(bert->decode(ids), "hello world");
  EXPECT_THROW(bert->decode({-1}), Error);
  EXPECT_THROW(bert->token_text(bert->vocab_size()), Error);
}

// ------------------------------------------------------------------ other file formats

TEST(Tokenizers, Gpt2EncoderJsonMatchesGgufCases) {
  const std::string enc = require_testdata("gpt2/encoder.json");
  const std::string bpe = require_testdata("gpt2/vocab.bpe");
  const std::string gguf = require_testdata("ggml-vocab-gpt-2.gguf");
  ASSERT_FALSE(enc.empty() || bpe.empty() || gguf.empty());
  auto tok = load_gpt2_encoder(enc, bpe);
  EXPECT_EQ(tok->vocab_size(), 50257);
  const auto cases = read_vocab_cases(gguf);
  EXPECT_EQ(run_cases(*tok, cases, "gpt2-encoder"), cases.size());
  EXPECT_EQ(tok->encode("<|endoftext|>", false), (std::vector<int32_t>{50256}));
}

TEST(Tokenizers, HfTokenizerJsonByteLevelBpe) {
  struct Case {
    const char* vocab;
    std::string regex;
    bool ignore_merges;
  } cases[] = {
      {"gpt-2", "", false},
      {"llama-bpe",
       R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       true},
      {"qwen2",
       R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       false},
  };
  for (const auto& c : cases) {
    const std::string gguf = require_testdata(std::string("ggml-vocab-") + c.vocab + ".gguf");
    ASSERT_FALSE(gguf.empty());
    const std::string json_path = temp_path(std::string(c.vocab) + "-tokenizer.json");
    write_file(json_path, bpe_json_from_gguf(gguf, c.regex, c.ignore_merges));
    auto tok = load_tokenizer(json_path);
    EXPECT_EQ(tok->kind(), "byte-level-bpe");
    const auto expected = read_vocab_cases(gguf);
    EXPECT_EQ(run_cases(*tok, expected, std::string(c.vocab) + ".json"), expected.size());
    std::remove(json_path.c_str());
  }
}

TEST(Tokenizers, WordPieceFromTokenizerJsonAndVocabTxt) {
  const std::string gguf = require_testdata("ggml-vocab-bert-bge.gguf");
  ASSERT_FALSE(gguf.empty());
  auto ref = load_tokenizer(gguf);
  // Recreate the original BERT vocabulary (the GGUF converter rewrote "##x" / "x").
  std::vector<std::string> vocab(ref->vocab_size());
  std::string txt;
  nlohmann::json v = nlohmann::json::object();
  for (int32_t i = 0; i < ref->vocab_size(); ++i) {
    vocab[i] = ref->token_text(i);
    txt += vocab[i] + "\n";
    v[vocab[i]] = i;
  }
  const std::string dir = temp_path("bert");
  ASSERT_EQ(system(("mkdir -p '" + dir + "'").c_str()), 0);
  write_file(dir + "/vocab.txt", txt);
  auto from_txt = load_tokenizer(dir);  // a folder with only vocab.txt
  nlohmann::json root = {
      {"added_tokens",
       {{{"id", 0}, {"content", "[PAD]"}, {"special", true}},
        {{"id", 100}, {"content", "[UNK]"}, {"special", true}},
        {{"id", 101}, {"content", "[CLS]"}, {"special", true}},
        {{"id", 102}, {"content", "[SEP]"}, {"special", true}},
        {{"id", 103}, {"content", "[MASK]"}, {"special", true}}}},
      {"normalizer",
       {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
        {"strip_accents", nullptr}, {"lowercase", true}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                    {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}}}}},
      {"model",
       {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 100}, {"vocab", v}}}};
  write_file(dir + "/tokenizer.json", root.dump());
  auto from_json = load_tokenizer(dir + "/tokenizer.json");
  const auto cases = read_vocab_cases(gguf);
  // In vocab.txt / tokenizer.json [CLS] etc. are real added tokens and are matched in text; the
  // llama.cpp cases contain none, so the expected ids are the same.
  EXPECT_EQ(run_cases(*from_txt, cases, "bert vocab.txt"), cases.size());
  EXPECT_EQ(run_cases(*from_json, cases, "bert json"), cases.size());
  EXPECT_EQ(from_json->encode("[CLS] hi [SEP]", false), (std::vector<int32_t>{101, 7632, 102}));
  const auto with = from_json->encode("hi", true);
  EXPECT_EQ(with, (std::vector<int32_t>{101, 7632, 102}));
  // Words longer than max_input_chars_per_word are [UNK].
  EXPECT_EQ(from_json->encode(std::string(101, 'a'), false), (std::vector<int32_t>{100}));
  EXPECT_EQ(system(("rm -rf '" + dir + "'").c_str()), 0);
}

TEST(Tokenizers, PretokenizerRegexSemantics) {
  auto split = [](PreTokenizer k, const std::string& s) {
    std::vector<std::string> out;
    for (auto p : pretokenize(k, s)) out.emplace_back(p);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split(PreTokenizer::Gpt2, "Hello world  foo's 123"), (V{"Hello", " world", " ", " foo", "'s", " 123"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "a\n\n b"), (V{"a", "\n\n", " b"}));
  EXPECT_EQ(split(PreTokenizer::Llama3, "12345 DON'T\n\n  x"), (V{"123", "45", " DON", "'T", "\n\n", " ", " x"}));
  EXPECT_EQ(split(PreTokenizer::Qwen2, "x 123!!\n"), (V{"x", " ", "1", "2", "3", "!!\n"}));
  EXPECT_EQ(split(PreTokenizer::Llama3, "   "), (V{"   "}));
}

// ------------------------------------------------------------------ GGUF reader

namespace {
struct GgufWriter {
  std::string b;
  void u32(uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
  void u64(uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); }
  void str(const std::string& s) {
    u64(s.size());
    b += s;
  }
  void key(const std::string& k, GgufType t) {
    str(k);
    u32(static_cast<uint32_t>(t));
  }
};

std::string sample_gguf() {
  GgufWriter w;
  w.b = "GGUF";
  w.u32(3);
  w.u64(2);   // tensors
  w.u64(8);   // metadata
  w.key("general.architecture", GgufType::STRING); w.str("llama");
  w.key("general.alignment", GgufType::U32); w.u32(64);
  w.key("a.i8", GgufType::I8); w.b += static_cast<char>(-5);
  w.key("a.f32", GgufType::F32); { float f = 0.5f; w.b.append(reinterpret_cast<char*>(&f), 4); }
  w.key("a.bool", GgufType::BOOL); w.b += '\1';
  w.key("a.f64", GgufType::F64); { double d = -2.25; w.b.append(reinterpret_cast<char*>(&d), 8); }
  w.key("a.ints", GgufType::ARRAY); w.u32(uint32_t(GgufType::I32)); w.u64(3);
  for (int32_t v : {1, -2, 3}) w.b.append(reinterpret_cast<char*>(&v), 4);
  w.key("a.nested", GgufType::ARRAY); w.u32(uint32_t(GgufType::ARRAY)); w.u64(2);
  for (int k = 0; k < 2; ++k) { w.u32(uint32_t(GgufType::STRING)); w.u64(1); w.str(k ? "y" : "x"); }
  // tensors: 4x2 f32 at 0, 32-element Q8_0 at 64
  w.str("w"); w.u32(2); w.u64(4); w.u64(2); w.u32(0); w.u64(0);
  w.str("q"); w.u32(1); w.u64(32); w.u32(8); w.u64(64);
  while (w.b.size() % 64) w.b += '\0';
  for (int i = 0; i < 8; ++i) { float f = float(i); w.b.append(reinterpret_cast<char*>(&f), 4); }
  w.b.append(32, '\0');
  w.b.append(34, '\x01');
  return w.b;
}
}  // namespace

TEST(Gguf, ReadsAllValueTypesTensorsAndAlignment) {
  const std::string p = temp_path("sample.gguf");
  write_file(p, sample_gguf());
  GgufFile g(p);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.get_string("general.architecture", ""), "llama");
  EXPECT_EQ(g.get("a.i8").as_int(), -5);
  EXPECT_DOUBLE_EQ(g.get("a.f32").as_double(), 0.5);
  EXPECT_TRUE(g.get("a.bool").as_bool());
  EXPECT_DOUBLE_EQ(g.get("a.f64").as_double(), -2.25);
  EXPECT_EQ(g.get("a.ints").ints(), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g.get("a.nested").array_at(1).string_at(0), "y");
  EXPECT_EQ(g.find("missing"), nullptr);
  EXPECT_NE(error_of([&] { g.get("missing"); }).find("missing"), std::string::npos);
  EXPECT_NE(error_of([&] { g.get("a.ints").as_string(); }).find("a.ints: expected string, got array of i32"),
            std::string::npos);
  ASSERT_EQ(g.tensors().size(), 2u);
  const GgufTensorInfo* w = g.find_tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dims, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(w->n_bytes, 32u);
  EXPECT_EQ(g.data_offset() % 64, 0u);
  float f[8];
  std::memcpy(f, g.tensor_data(*w), 32);
  EXPECT_EQ(f[7], 7.0f);
  const GgufTensorInfo* q = g.find_tensor("q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->n_bytes, 34u);
  EXPECT_EQ(g.tensor_data(*q)[0], 1);
  EXPECT_STREQ(ggml_type_info(q->type)->name, "Q8_0");
  std::remove(p.c_str());
}

TEST(Gguf, RealVocabFile) {
  const std::string path = require_testdata("ggml-vocab-llama-spm.gguf");
  ASSERT_FALSE(path.empty());
  GgufFile g(path);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model", ""), "llama");
  EXPECT_EQ(g.get("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(g.get("tokenizer.ggml.scores").array_type(), GgufType::F32);
  EXPECT_TRUE(g.tensors().empty());
}

TEST(Gguf, MalformedFilesAreRejectedWithClearErrors) {
  const std::string good = sample_gguf();
  const std::string p = temp_path("bad.gguf");
  auto err = [&](const std::string& bytes) {
    write_file(p, bytes);
    return error_of([&] { GgufFile g(p); });
  };
  auto expect_err = [&](const std::string& bytes, const std::string& needle) {
    const std::string e = err(bytes);
    EXPECT_NE(e.find(p), std::string::npos) << e;
    EXPECT_NE(e.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << e;
  };
  expect_err("GGUX" + good.substr(4), "magic: expected \"GGUF\"");
  {
    std::string b = good;
    b[4] = 1;
    expect_err(b, "version: expected 2 or 3, got 1");
  }
  // Truncation at every prefix length must be an error, never a crash.
  for (size_t n : {size_t(0), size_t(3), size_t(10), size_t(30), size_t(60), size_t(200), good.size() - 1})
    expect_err(good.substr(0, n), n < 4 ? "truncated" : "");
  expect_err(good.substr(0, 60), "truncated");
  expect_err(good.substr(0, good.size() - 1), "tensor q: data");
  {
    std::string b = good;  // value type of the first key -> 99
    const size_t pos = 4 + 4 + 8 + 8 + 8 + std::strlen("general.architecture");
    uint32_t t = 99;
    std::memcpy(&b[pos], &t, 4);
    expect_err(b, "general.architecture: expected a value type 0..12, got 99");
  }
  {
    std::string b = good;  // metadata count absurd
    uint64_t n = uint64_t(1) << 60;
    std::memcpy(&b[16], &n, 8);
    expect_err(b, "metadata count: expected a count that fits the file");
  }
  {
    std::string b = good;  // array length absurd
    const size_t pos = b.find("a.ints") + 6 + 4 + 4;
    uint64_t n = uint64_t(1) << 61;
    std::memcpy(&b[pos], &n, 8);
    expect_err(b, "a.ints: array length");
  }
  {
    std::string b = good;  // tensor offset beyond the file
    const size_t pos = b.find(std::string("\x01\0\0\0\0\0\0\0q", 9)) + 9 + 4 + 8 + 4;
    uint64_t off = 1 << 20;
    std::memcpy(&b[pos], &off, 8);
    expect_err(b, "tensor q: data");
  }
  {
    std::string b = good;  // element count fits int64 but the byte count would wrap (fuzzer finding)
    const size_t pos = b.find(std::string("\x01\0\0\0\0\0\0\0q", 9)) + 9 + 4;
    uint64_t dim = (uint64_t(1) << 63) - 64;  // q is Q8_0: 34 bytes per 32 elements
    std::memcpy(&b[pos], &dim, 8);
    expect_err(b, "are more bytes than any file holds");
  }
  std::remove(p.c_str());
}

// ------------------------------------------------------------------ malformed tokenizers

TEST(Tokenizers, BadTokenizerJsonNamesFileAndField) {
  const std::string p = temp_path("tokenizer.json");
  auto check = [&](const std::string& text, const std::string& needle) {
    write_file(p, text);
    const std::string e = error_of([&] { load_tokenizer(p); });
    EXPECT_NE(e.find(p), std::string::npos) << e;
    EXPECT_NE(e.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << e;
  };
  check(R"({"model": {"type": "BPE", "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})", "model.vocab");
  check(R"({"model": {"type": "WordPiece", "unk_token": "[UNK]"}})", "model.vocab");
  // An id beyond the vocabulary's entries is refused before it sizes anything (fuzzer finding).
  check(R"({"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "a": 15532287}}})",
        "model.vocab[\"a\"]: id 15532287 is not below 260 (twice the 2 entries of the vocabulary plus 256");
  check(R"({"model": {"type": "Quantum", "vocab": {}}})", "model.type: expected \"BPE\" (byte-level) or \"WordPiece\", got \"Quantum\"");
  check(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"}})",
        "merges[0]");
  check(R"({"model": )", "not valid JSON");
  check(R"({"version": "1.0"})", "model: expected an object");
  std::remove(p.c_str());
  EXPECT_NE(error_of([] { load_tokenizer("/nonexistent/tokenizer.json"); }).find("/nonexistent/tokenizer.json"),
            std::string::npos);
}

TEST(Tokenizers, GgufWithoutTokenizerMetadata) {
  const std::string p = temp_path("notok.gguf");
  write_file(p, sample_gguf());
  const std::string e = error_of([&] { load_tokenizer(p); });
  EXPECT_NE(e.find(p + ": tokenizer.ggml.model: missing"), std::string::npos) << e;
  std::remove(p.c_str());
}

// ------------------------------------------------------------------ SentencePiece training

TEST(SentencePieceTraining, TrainsLoadsAndRejectsTruncatedModels) {
  ASSERT_FALSE(require_testdata("gpt2/encoder.json").empty());
  const std::string corpus = temp_path("corpus.txt");
  {
    std::ofstream out(corpus);
    for (const auto& l : make_corpus(1500)) out << l << "\n";
  }
  SentencePieceTrainOptions o;
  o.input_files = {corpus};
  o.model_prefix = temp_path("spm_small");
  o.vocab_size = 600;
  o.model_type = "bpe";
  o.user_defined_symbols = {"<tool>"};
  const auto r = train_sentencepiece(o);
  auto tok = load_tokenizer(r.model_path);
  EXPECT_EQ(tok->kind(), "sentencepiece-bpe");
  EXPECT_EQ(tok->vocab_size(), 600);
  const auto ids = tok->encode("the <tool> said hello", false);
  bool has_tool = false;
  for (int32_t id : ids) has_tool |= tok->token_text(id) == "<tool>";
  EXPECT_TRUE(has_tool);
  EXPECT_EQ(tok->decode(ids), "the <tool> said hello");
  EXPECT_EQ(tok->decode(tok->encode("emoji \xF0\x9F\xA6\x99 ok", false)), "emoji \xF0\x9F\xA6\x99 ok");  // byte fallback

  // Same corpus, same seed -> the same pieces, scores and types (the files differ only in
  // the recorded model_prefix).
  SentencePieceTrainOptions o2 = o;
  o2.model_prefix = temp_path("spm_small2");
  const auto r2 = train_sentencepiece(o2);
  const auto m1 = SentencePieceModel::load(r.model_path), m2 = SentencePieceModel::load(r2.model_path);
  ASSERT_EQ(m1.pieces.size(), m2.pieces.size());
  size_t same = 0;
  for (size_t i = 0; i < m1.pieces.size(); ++i)
    same += m1.pieces[i].piece == m2.pieces[i].piece && m1.pieces[i].score == m2.pieces[i].score &&
            m1.pieces[i].type == m2.pieces[i].type;
  EXPECT_EQ(same, m1.pieces.size());

  // JSONL input (the suite's corpora): the "text" field of each record is the training text, so
  // the same lines as JSONL train the same model; a record without text names file and line.
  const std::string jsonl = temp_path("corpus.jsonl");
  {
    std::ofstream out(jsonl);
    for (const auto& l : make_corpus(1500)) out << nlohmann::json{{"id", "x"}, {"text", l}}.dump() << "\n";
  }
  SentencePieceTrainOptions oj = o;
  oj.input_files = {jsonl};
  oj.model_prefix = temp_path("spm_jsonl");
  const auto rj = train_sentencepiece(oj);
  const auto mj = SentencePieceModel::load(rj.model_path);
  ASSERT_EQ(mj.pieces.size(), m1.pieces.size());
  for (size_t i = 0; i < mj.pieces.size(); ++i) EXPECT_EQ(mj.pieces[i].piece, m1.pieces[i].piece) << i;
  EXPECT_FALSE(file_exists(oj.model_prefix + ".input0.txt"));  // the temporary text is removed
  write_file(jsonl, "{\"text\": \"fine\"}\n{\"id\": 3}\n");
  const std::string ej = error_of([&] { train_sentencepiece(oj); });
  EXPECT_NE(ej.find(jsonl + ":2"), std::string::npos) << ej;
  EXPECT_NE(ej.find("\"text\""), std::string::npos) << ej;
  for (const auto& f : {jsonl, rj.model_path, rj.vocab_path}) std::remove(f.c_str());

  // Truncated model file: the error names the file and the protobuf field.
  const std::string bytes = slurp(r.model_path);
  const std::string cut = temp_path("truncated.model");
  write_file(cut, bytes.substr(0, bytes.size() / 2 + 3));
  const std::string e = error_of([&] { load_tokenizer(cut); });
  EXPECT_NE(e.find(cut), std::string::npos) << e;
  EXPECT_NE(e.find("ModelProto"), std::string::npos) << e;
  write_file(cut, "not a model at all, just text");
  EXPECT_NE(error_of([&] { load_tokenizer(cut); }).find(cut), std::string::npos);

  // Bad options fail before the trainer runs, naming the option.
  SentencePieceTrainOptions bad = o;
  bad.model_type = "wordpiece";
  EXPECT_NE(error_of([&] { train_sentencepiece(bad); }).find("model_type"), std::string::npos);
  bad = o;
  bad.input_files = {"/nonexistent/corpus.txt"};
  EXPECT_NE(error_of([&] { train_sentencepiece(bad); }).find("/nonexistent/corpus.txt"), std::string::npos);
  // Errors reported by the trainer itself come back with its message.
  bad = o;
  bad.vocab_size = 100000;
  EXPECT_NE(error_of([&] { train_sentencepiece(bad); }).find("Vocabulary size"), std::string::npos);

  for (const auto& f : {corpus, r.model_path, r.vocab_path, r2.model_path, r2.vocab_path, cut})
    std::remove(f.c_str());
}
