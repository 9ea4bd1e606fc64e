// The smollm / starcoder pre-tokenizer family against llama.cpp's published cases, tokenizer
// files written from GGUF vocabularies (import/tokenizer_files.h) tokenizing as the GGUF
// itself does, and chat templates rendered by family (tokenizers/chat_template.h). The parity with
// Hugging Face `tokenizers` and transformers is tests/reference/check_tokenizers.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "import/tokenizer_files.h"
#include "test_util.h"
#include "tokenizer_test_util.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/pretokenizer.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_loaders.h"

using namespace gemkit;
using namespace gemkit::testing;
using gemkit::test::error_of;

namespace {

std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "gemkit_imptok_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::create_directories(d);
  return d;
}

std::vector<std::string> split(PreTokenizer k, const std::string& s) {
  std::vector<std::string> out;
  for (auto p : pretokenize(k, s)) out.emplace_back(p);
  return out;
}

}  // namespace

TEST(SmollmPretokenizer, DigitsAloneThenGpt2Between) {
  using V = std::vector<std::string>;
  // The space before a number is no longer attached to it (GPT-2 gives " 123").
  EXPECT_EQ(split(PreTokenizer::Smollm, "Hello world  foo's 123"),
            (V{"Hello", " world", " ", " foo", "'s", " ", "1", "2", "3"}));
  EXPECT_EQ(split(PreTokenizer::Smollm, "x2y 4.5%\n"), (V{"x", "2", "y", " ", "4", ".", "5", "%", "\n"}));
  // \p{N} beyond ASCII: superscript two (No) and Arabic-Indic three (Nd) are pieces too.
  EXPECT_EQ(split(PreTokenizer::Smollm, "m\xc2\xb2 \xd9\xa3"), (V{"m", "\xc2\xb2", " ", "\xd9\xa3"}));
  // Whitespace before a digit: the regex runs per stretch, so the stretch end is the text end.
  EXPECT_EQ(split(PreTokenizer::Smollm, "a   7"), (V{"a", "   ", "7"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "a   7"), (V{"a", "  ", " 7"}));
  PreTokenizer k = PreTokenizer::Gpt2;
  for (const char* name : {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}) {
    ASSERT_TRUE(pretokenizer_from_gguf_name(name, &k)) << name;
    EXPECT_EQ(k, PreTokenizer::Smollm) << name;
  }
  EXPECT_STREQ(pretokenizer_gguf_name(PreTokenizer::Smollm), "smollm");
  EXPECT_FALSE(gguf_pre_ignores_merges("smollm"));
  EXPECT_TRUE(gguf_pre_ignores_merges("llama-bpe"));
  EXPECT_FALSE(gguf_pre_ignores_merges("dbrx"));
}

// llama.cpp's expected ids for the vocabularies of this family (test-tokenizer-0 convention:
// no special tokens added, none parsed).
class SmollmFamilyVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(SmollmFamilyVocab, MatchesLlamaCppExpectedIds) {
  const std::string path = require_testdata("ggml-vocab-" + GetParam() + ".gguf");
  ASSERT_FALSE(path.empty());
  const auto cases = read_vocab_cases(path);
  ASSERT_GT(cases.size(), 30u);
  auto tok = load_tokenizer(path);
  size_t ok = 0;
  for (const auto& c : cases) {
    const auto got = tok->encode(c.text, /*add_special=*/false);
    if (got == c.ids) ++ok;
    else ADD_FAILURE() << GetParam() << ": \"" << c.text << "\"";
  }
  std::printf("[ conformance ] %-12s %zu/%zu cases\n", GetParam().c_str(), ok, cases.size());
  EXPECT_EQ(ok, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Vocabs, SmollmFamilyVocab, ::testing::Values("starcoder", "refact", "command-r"),
                         vocab_param_name);

// The written tokenizer.json, read back by gemkit, tokenizes every llama.cpp case exactly as the
// GGUF does, with and without special tokens, and names the same special ids.
class TokenizerFilesFromGguf : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerFilesFromGguf, RoundTripTokenizesAsTheGguf) {
  const std::string path = require_testdata("ggml-vocab-" + GetParam() + ".gguf");
  ASSERT_FALSE(path.empty());
  const std::string dir = temp_dir(GetParam());
  GgufFile gguf(path);
  write_hf_tokenizer_files(gguf, dir);
  auto direct = load_gguf_tokenizer(gguf);
  auto imported = load_tokenizer(dir);
  EXPECT_EQ(imported->kind(), "byte-level-bpe");
  EXPECT_EQ(imported->vocab_size(), direct->vocab_size());
  EXPECT_EQ(imported->special().bos, direct->special().bos);
  EXPECT_EQ(imported->special().eos, direct->special().eos);
  EXPECT_EQ(imported->special().add_bos, direct->special().add_bos);
  EXPECT_EQ(imported->special().add_eos, direct->special().add_eos);
  const auto cases = read_vocab_cases(path);
  ASSERT_GT(cases.size(), 30u);
  size_t ok = 0;
  for (const auto& c : cases)
    for (bool special : {false, true}) ok += imported->encode(c.text, special) == direct->encode(c.text, special);
  EXPECT_EQ(ok, 2 * cases.size());

  const auto cfg = nlohmann::json::parse(read_text_file(dir + "/tokenizer_config.json"));
  EXPECT_EQ(cfg["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(cfg["clean_up_tokenization_spaces"], false);
  EXPECT_EQ(cfg["add_bos_token"], direct->special().add_bos);
  if (direct->special().eos >= 0) {
    EXPECT_EQ(cfg["eos_token"], direct->token_text(direct->special().eos));
  }
  const std::string arch = gguf.get_string("general.architecture", "");
  EXPECT_EQ(cfg["model_max_length"], gguf.get_int(arch + ".context_length", -1));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TokenizerFilesFromGguf,
                         ::testing::Values("gpt-2", "mpt", "starcoder", "refact", "command-r", "llama-bpe", "qwen2"),
                         vocab_param_name);

// SentencePiece ("llama") vocabularies become a tokenizer.model that gemkit reads back into the
// same tokenizer (pieces, scores, types, byte fallback, dummy prefix, special ids).
class SpmFilesFromGguf : public ::testing::TestWithParam<std::string> {};

TEST_P(SpmFilesFromGguf, RoundTripTokenizesAsTheGguf) {
  const std::string path = require_testdata("ggml-vocab-" + GetParam() + ".gguf");
  ASSERT_FALSE(path.empty());
  const std::string dir = temp_dir(GetParam());
  GgufFile gguf(path);
  write_hf_tokenizer_files(gguf, dir);
  EXPECT_FALSE(file_exists(dir + "/tokenizer.json"));
  auto direct = load_gguf_tokenizer(gguf);
  auto imported = load_tokenizer(dir);
  EXPECT_EQ(imported->kind(), "sentencepiece-bpe");
  EXPECT_EQ(imported->vocab_size(), direct->vocab_size());
  for (auto get : {+[](const SpecialTokens& s) { return s.bos; }, +[](const SpecialTokens& s) { return s.eos; },
                   +[](const SpecialTokens& s) { return s.unk; }, +[](const SpecialTokens& s) { return s.pad; }})
    EXPECT_EQ(get(imported->special()), get(direct->special()));
  EXPECT_EQ(imported->special().add_bos, direct->special().add_bos);
  const auto cases = read_vocab_cases(path);
  ASSERT_GT(cases.size(), 30u);
  size_t ok = 0;
  for (const auto& c : cases)
    for (bool special : {false, true}) ok += imported->encode(c.text, special) == direct->encode(c.text, special);
  EXPECT_EQ(ok, 2 * cases.size());
  const auto cfg = nlohmann::json::parse(read_text_file(dir + "/tokenizer_config.json"));
  EXPECT_EQ(cfg["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(cfg["bos_token"], direct->token_text(direct->special().bos));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Vocabs, SpmFilesFromGguf, ::testing::Values("llama-spm", "phi-3"),
                         vocab_param_name);

TEST(TokenizerFiles, UnsupportedTokenizerModelNamesTheKey) {
  const std::string path = require_testdata("ggml-vocab-bert-bge.gguf");
  ASSERT_FALSE(path.empty());
  GgufFile gguf(path);
  const std::string dir = temp_dir("bert");
  const std::string e = error_of([&] { write_hf_tokenizer_files(gguf, dir); });
  EXPECT_NE(e.find(path + ": tokenizer.ggml.model: expected \"gpt2\" (byte-level BPE) or \"llama\" (SentencePiece), "
                          "got \"bert\""),
            std::string::npos)
      << e;
  EXPECT_FALSE(file_exists(dir + "/tokenizer.json"));
  std::filesystem::remove_all(dir);
}

TEST(TokenizerJson, DigitsSequenceIsRecognisedAndRunsOfDigitsRefused) {
  const std::string dir = temp_dir("digits");
  auto write = [&](const std::string& pre) {
    nlohmann::json vocab = nlohmann::json::object();
    // Printable ASCII maps to itself in GPT-2's byte alphabet; "Ġ" is the space byte.
    for (int c = 33; c < 127; ++c) vocab[std::string(1, char(c))] = c - 33;
    vocab["\xc4\xa0"] = 94;
    vocab["12"] = 95;
    const nlohmann::json doc = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array({"1 2"})}}},
                                {"pre_tokenizer", nlohmann::json::parse(pre)}};
    write_text_file_atomic(dir + "/tokenizer.json", doc.dump());
    return dir + "/tokenizer.json";
  };
  const std::string bl = R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})";
  // GPT-2 alone keeps "12" together and merges it; after Digits the two digits stay apart.
  auto gpt2 = load_tokenizer(write(bl));
  EXPECT_EQ(gpt2->encode("12", false), (std::vector<int32_t>{95}));
  auto smol = load_tokenizer(write(R"({"type": "Sequence", "pretokenizers": [{"type": "Digits",
      "individual_digits": true}, )" + bl + "]}"));
  EXPECT_EQ(smol->encode("12", false), (std::vector<int32_t>{'1' - 33, '2' - 33}));
  const std::string p = write(R"({"type": "Sequence", "pretokenizers": [{"type": "Digits",
      "individual_digits": false}, )" + bl + "]}");
  const std::string e = error_of([&] { load_tokenizer(p); });
  EXPECT_NE(e.find(p + ": pre_tokenizer.Digits.individual_digits: expected true"), std::string::npos) << e;
  const std::string q = write(R"({"type": "Sequence", "pretokenizers": [)" + bl + R"(, {"type": "Digits",
      "individual_digits": true}]})");
  EXPECT_NE(error_of([&] { load_tokenizer(q); }).find("Sequence[Digits, ByteLevel]"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// ------------------------------------------------------------------ chat templates

namespace {
// SmolLM2-135M-Instruct's template as its GGUF stores it (tokenizer.chat_template).
const char* kSmolTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
}  // namespace

TEST(ChatTemplate, ChatMLWithTheTemplatesDefaultSystemMessage) {
  ChatTemplate t(kSmolTemplate, "<|im_start|>", "cfg.json: chat_template");
  EXPECT_EQ(t.family(), ChatTemplate::Family::ChatML);
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
  EXPECT_EQ(t.default_system(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(t.render({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.render({{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n");
  // The escaped spelling of the newline, and the branch that writes the caller's own system turn.
  ChatTemplate q(R"({%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Q. Don\'t guess.<|im_end|>\n' }}{%- endif %})",
                 "", "x");
  EXPECT_EQ(q.default_system(), "You are Q. Don't guess.");
  ChatTemplate plain("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}",
                     "", "x");
  EXPECT_EQ(plain.default_system(), "");
  EXPECT_EQ(plain.render({{"user", "Hi"}}, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama3WritesBosAndTrimsContents) {
  const std::string src =
      "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
      "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}";
  ChatTemplate t(src, "<|begin_of_text|>", "x");
  EXPECT_EQ(t.family(), ChatTemplate::Family::Llama3);
  EXPECT_EQ(t.end_of_turn(), "<|eot_id|>");
  EXPECT_EQ(t.render({{"system", " Be brief.\n"}, {"user", "Hi\t"}}, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, UnrecognisedTemplatesNameTheFileAndKey) {
  const std::string where = "/m/tokenizer_config.json: chat_template";
  auto err = [&](const std::string& src) { return error_of([&] { ChatTemplate(src, "", where); }); };
  EXPECT_NE(err("{{ messages[0]['content'] }}").find(where + ": unrecognised chat template"), std::string::npos);
  EXPECT_NE(err("<|start_header_id|> Cutting Knowledge Date <|eot_id|>").find(where + ": Llama 3.1"), std::string::npos);
  EXPECT_NE(err("<|im_start|><think><|im_end|>").find(where + ": ChatML template with <think>"), std::string::npos);

  const std::string dir = temp_dir("chat");
  write_text_file_atomic(dir + "/tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_NE(error_of([&] { ChatTemplate::from_folder(dir); }).find(dir + "/tokenizer_config.json: chat_template: missing"),
            std::string::npos);
  write_text_file_atomic(dir + "/tokenizer_config.json",
                         nlohmann::json{{"chat_template", {{{"name", "default"}, {"template", kSmolTemplate}}}}}.dump());
  EXPECT_EQ(ChatTemplate::from_folder(dir).family(), ChatTemplate::Family::ChatML);
  std::filesystem::remove_all(dir);
}

// A special token id outside the vocabulary (fuzzer finding: a BERT vocabulary with
// seperator_token_id 370546198 loaded, and encode() appended that id) is a named error;
// 0xFFFFFFFF, how converters write "none" into an unsigned field, still means none.
TEST(GgufTokenizer, SpecialIdsOutsideTheVocabularyAreNamedErrors) {
  const std::string dir = temp_dir("special_ids");
  const auto vocab = [&](const std::string& name, uint32_t sep) {
    GgufWriter w;
    w.set_string("general.architecture", "bert");
    w.set_string("tokenizer.ggml.model", "bert");
    w.set_strings("tokenizer.ggml.tokens", {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xe2\x96\x81hello"});
    w.set_i32s("tokenizer.ggml.token_type", {3, 2, 3, 3, 1});
    w.set_u32("tokenizer.ggml.unknown_token_id", 1);
    w.set_u32("tokenizer.ggml.cls_token_id", 2);
    w.set_u32("tokenizer.ggml.seperator_token_id", sep);
    w.write(dir + "/" + name, true);
    return dir + "/" + name;
  };
  const std::string e = error_of([&] { load_gguf_tokenizer(vocab("bad.gguf", 370546198)); });
  for (const char* part : {"bad.gguf", "tokenizer.ggml.seperator_token_id", "[0, 5)", "370546198"})
    EXPECT_NE(e.find(part), std::string::npos) << part << " not in: " << e;
  const auto none = load_gguf_tokenizer(vocab("none.gguf", 0xFFFFFFFFu));
  EXPECT_EQ(none->special().sep, -1);
  EXPECT_EQ(none->encode("hello"), (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(load_gguf_tokenizer(vocab("good.gguf", 3))->encode("hello"), (std::vector<int32_t>{2, 4, 3}));
}

// Token texts go into tokenizer.json, which must be UTF-8: a stray byte is refused naming the
// file, the key with its index, and the byte and offset (the one check core/utf8.h gives every
// GGUF string on its way into JSON), and no tokenizer.json is left half-written. (Merges are
// checked the same way, but a merge can only name tokens of the vocabulary, checked before it.)
TEST(TokenizerFiles, TokenTextsMustBeUtf8) {
  const std::string dir = temp_dir("utf8");
  GgufWriter w;
  w.set_string("general.architecture", "gpt2");
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt-2");
  w.set_strings("tokenizer.ggml.tokens", {"a", "b", "ab", "c\xe9"});
  w.set_i32s("tokenizer.ggml.token_type", {1, 1, 1, 1});
  w.set_strings("tokenizer.ggml.merges", {"a b"});
  w.write(dir + "/token.gguf", true);
  const std::string e = error_of([&] { write_hf_tokenizer_files(GgufFile(dir + "/token.gguf"), dir + "/out"); });
  for (const char* part : {"token.gguf: tokenizer.ggml.tokens[3]", "byte 0xE9 at offset 1"})
    EXPECT_NE(e.find(part), std::string::npos) << part << " not in: " << e;
  EXPECT_FALSE(file_exists(dir + "/out/tokenizer.json"));
  std::filesystem::remove_all(dir);
}
