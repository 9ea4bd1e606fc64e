// Our SentencePiece implementation (data/spm_tokenizer) against libsentencepiece itself:
// models of both types, with and without byte fallback, identity and precompiled-charsmap
// normalization (nmt_nfkc, nfkc_cf) and user-defined symbols are trained on a deterministic
// corpus, then every corpus line and a set of edge cases must encode to the same ids and
// decode to the same text. Links libsentencepiece, so never torch (docs/design/toolchain.md).
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <unistd.h>

#include "tokenizer_test_util.h"
#include "tokenizers/spm_tokenizer.h"
#include "tokenizers/tokenizer_loaders.h"

using namespace gemkit;
using namespace gemkit::testing;

namespace {

struct Config {
  const char* name;
  const char* model_type;
  const char* normalization;
  bool byte_fallback;
  const char* user_defined;  // comma separated, "" for none
  int vocab_size;
};

const Config kConfigs[] = {
    {"bpe_identity_bytes", "bpe", "identity", true, "", 900},
    {"unigram_identity_bytes", "unigram", "identity", true, "", 900},
    {"unigram_nmt_nfkc", "unigram", "nmt_nfkc", false, "", 700},
    {"bpe_nfkc_cf_user", "bpe", "nfkc_cf", false, "<tool>,<sep>,@@", 700},
    {"unigram_nmt_nfkc_user_bytes", "unigram", "nmt_nfkc", true, "<tool>,<sep>", 800},
    // A large vocabulary has many near-tied Viterbi paths: checks the exact float/double
    // arithmetic of unigram_model.cc.
    {"unigram_identity_large", "unigram", "identity", true, "", 4000},
    {"bpe_identity_large", "bpe", "identity", true, "", 4000},
};

std::vector<std::string> edge_cases() {
  return {
      "", " ", "   ", "a", "  leading and trailing  ", "double  spaces   inside",
      "tabs\tand\nnewlines\r\n", "ＡＢＣ１２３ full width", "\xEF\xAC\x81nance ligature",  // ﬁ
      "\xE2\x91\xA0 circled one", "caf\xC3\xA9 vs cafe\xCC\x81", "emoji \xF0\x9F\xA6\x99\xF0\x9F\x98\x80!",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C CJK", "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",
      "bad utf8 \xFF\xFE here", "truncated \xE2\x82", "lone continuation \x80 byte",
      "<tool> inside text<sep>and@@more", "<s> and </s> and <unk> literally", "\xE2\x96\x81 meta symbol",
      "numbers 1234567890 3.14159", "MiXeD CaSe WORDS", "'quotes' \"double\" `back`",
      "\xE2\x80\x8B zero width space", "\xC2\xA0non-breaking\xC2\xA0space", "\xE3\x80\x80ideographic space",
      "x\xCC\x81\xCC\x82\xCC\x83 stacked marks", std::string("nul\0byte", 8),
  };
}

std::string temp_prefix(const std::string& name) {
  return ::testing::TempDir() + "gemkit_parity_" + std::to_string(::getpid()) + "_" + name;
}

std::string show(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += std::to_string(x) + " ";
  return s;
}

}  // namespace

class SpmParity : public ::testing::TestWithParam<Config> {
 protected:
  static void SetUpTestSuite() {
    if (require_testdata("gpt2/encoder.json").empty()) return;
    corpus_path_ = temp_prefix("corpus.txt");
    lines_ = make_corpus(3000);
    std::ofstream out(corpus_path_);
    for (const auto& l : lines_) out << l << "\n";
  }
  static void TearDownTestSuite() { std::remove(corpus_path_.c_str()); }
  static std::string corpus_path_;
  static std::vector<std::string> lines_;
};
std::string SpmParity::corpus_path_;
std::vector<std::string> SpmParity::lines_;

TEST_P(SpmParity, EncodeAndDecodeMatchLibsentencepiece) {
  ASSERT_FALSE(lines_.empty()) << "corpus unavailable (test data missing)";
  const Config& c = GetParam();
  const std::string prefix = temp_prefix(c.name);
  std::unordered_map<std::string, std::string> kw = {
      {"input", corpus_path_},
      {"model_prefix", prefix},
      {"vocab_size", std::to_string(c.vocab_size)},
      {"model_type", c.model_type},
      {"normalization_rule_name", c.normalization},
      {"byte_fallback", c.byte_fallback ? "true" : "false"},
      {"character_coverage", "0.995"},  // leaves rare characters to <unk> / byte fallback
      {"num_threads", "1"},
      {"minloglevel", "2"},
      {"hard_vocab_limit", "false"},
  };
  if (*c.user_defined) kw["user_defined_symbols"] = c.user_defined;
  sentencepiece::SetRandomGeneratorSeed(7);
  const auto st = sentencepiece::SentencePieceTrainer::Train(kw);
  ASSERT_TRUE(st.ok()) << st.ToString();
  const std::string model = prefix + ".model";

  sentencepiece::SentencePieceProcessor ref;
  ASSERT_TRUE(ref.Load(model).ok());
  auto ours = load_sentencepiece_model(model);
  ASSERT_EQ(ours->vocab_size(), ref.GetPieceSize());
  EXPECT_EQ(ours->kind(), std::string("sentencepiece-") + c.model_type);
  EXPECT_EQ(ours->special().unk, ref.unk_id());
  EXPECT_EQ(ours->special().bos, ref.bos_id());
  EXPECT_EQ(ours->special().eos, ref.eos_id());

  std::vector<std::string> inputs = lines_;
  for (auto& e : edge_cases()) inputs.push_back(e);
  // Pairs of corpus lines joined: longer inputs with more merge interactions.
  for (size_t i = 0; i + 1 < 400; i += 2) inputs.push_back(lines_[i] + "  " + lines_[i + 1]);

  size_t enc_ok = 0, dec_ok = 0, shown = 0;
  for (const auto& text : inputs) {
    const std::vector<int> want = ref.EncodeAsIds(text);
    const std::vector<int32_t> got32 = ours->encode(text, /*add_special=*/false);
    const std::vector<int> got(got32.begin(), got32.end());
    if (got == want) ++enc_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << c.name << " encode \"" << text << "\"\n  sentencepiece " << show(want) << "\n  ours          " << show(got);
    const std::string want_text = ref.DecodeIds(want);
    const std::string got_text = ours->decode(std::vector<int32_t>(want.begin(), want.end()));
    if (got_text == want_text) ++dec_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << c.name << " decode of " << show(want) << "\n  sentencepiece \"" << want_text
                    << "\"\n  ours          \"" << got_text << "\"";
  }
  std::printf("[ spm parity  ] %-28s encode %zu/%zu, decode %zu/%zu\n", c.name, enc_ok, inputs.size(), dec_ok,
              inputs.size());
  EXPECT_EQ(enc_ok, inputs.size());
  EXPECT_EQ(dec_ok, inputs.size());
  std::remove(model.c_str());
  std::remove((prefix + ".vocab").c_str());
}

INSTANTIATE_TEST_SUITE_P(Models, SpmParity, ::testing::ValuesIn(kConfigs),
                         [](const auto& info) { return std::string(info.param.name); });
