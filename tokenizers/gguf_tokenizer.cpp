// Tokenizers from GGUF metadata, with llama.cpp's conventions (it wrote these files):
// token types 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; only
// user-defined tokens are matched in raw text (llama.cpp's parse_special=false default).
#include <memory>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_keys.h"
#include "tokenizers/bpe_tokenizer.h"
#include "tokenizers/spm_tokenizer.h"
#include "tokenizers/tokenizer_loaders.h"
#include "tokenizers/wordpiece_tokenizer.h"

namespace gemkit {

namespace {

// A special token's id from `key`, -1 when absent. -1 and 0xFFFFFFFF (how converters write
// "none" into a signed or unsigned field) also mean none; any other id must index the
// vocabulary of `n_vocab` tokens, or encode() would emit an id the embedding table lacks.
int32_t opt_id(const GgufFile& g, const char* key, size_t n_vocab) {
  const GgufValue* v = g.find(key);
  if (!v) return -1;
  const int64_t id = v->as_int();
  if (id == -1 || id == int64_t(UINT32_MAX)) return -1;
  if (id < 0 || uint64_t(id) >= n_vocab)
    fail(g.path() + ": " + key,
         "expected a token id in [0, " + std::to_string(n_vocab) + "), the vocabulary's size, got " + std::to_string(id));
  return static_cast<int32_t>(id);
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

Vocab read_vocab(const GgufFile& g) {
  Vocab v;
  const GgufValue& toks = g.get(gguf_key::kTokenizerTokens);
  if (!toks.is_array() || toks.array_type() != GgufType::STRING)
    fail(g.path() + ": " + gguf_key::kTokenizerTokens,
         std::string("expected array of string, got ") + gguf_type_name(toks.type()));
  const size_t n = toks.size();
  if (n == 0) fail(g.path() + ": " + gguf_key::kTokenizerTokens, "expected at least one token, got 0");
  v.tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) v.tokens.emplace_back(toks.string_at(i));
  v.scores.assign(n, 0.0f);
  if (const GgufValue* s = g.find(gguf_key::kTokenizerScores)) {
    if (s->size() < n)
      fail(g.path() + ": " + gguf_key::kTokenizerScores,
           "expected " + std::to_string(n) + " scores, got " + std::to_string(s->size()));
    for (size_t i = 0; i < n; ++i) v.scores[i] = static_cast<float>(s->double_at(i));
  }
  v.types.assign(n, 1);
  if (const GgufValue* t = g.find(gguf_key::kTokenizerTokenType)) {
    if (t->size() < n)
      fail(g.path() + ": " + gguf_key::kTokenizerTokenType,
           "expected " + std::to_string(n) + " types, got " + std::to_string(t->size()));
    for (size_t i = 0; i < n; ++i) v.types[i] = static_cast<int32_t>(t->int_at(i));
  }
  return v;
}

std::unique_ptr<Tokenizer> spm_from_gguf(const GgufFile& g) {
  Vocab v = read_vocab(g);
  SentencePieceModel m;
  m.model_type = SentencePieceModel::BPE;  // llama.cpp's SPM path merges by score
  m.pieces.resize(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    auto& p = m.pieces[i];
    p.piece = std::move(v.tokens[i]);
    p.score = v.scores[i];
    p.type = (v.types[i] >= 1 && v.types[i] <= 6) ? v.types[i] : SentencePieceModel::NORMAL;
    if (p.type == SentencePieceModel::BYTE) m.byte_fallback = true;
  }
  // llama.cpp tolerates several UNKNOWN-typed tokens (Phi-3 marks placeholders so); the
  // declared unknown token gets that type, the others act as control tokens.
  int32_t unk = opt_id(g, gguf_key::kTokenizerUnknownId, m.pieces.size());
  for (size_t i = 0; i < m.pieces.size() && unk < 0; ++i)
    if (m.pieces[i].type == SentencePieceModel::UNKNOWN) unk = static_cast<int32_t>(i);
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    auto& p = m.pieces[i];
    if (static_cast<int32_t>(i) == unk) p.type = SentencePieceModel::UNKNOWN;
    else if (p.type == SentencePieceModel::UNKNOWN) p.type = SentencePieceModel::CONTROL;
  }
  m.normalizer_name = "identity";
  m.add_dummy_prefix = g.get_bool(gguf_key::kTokenizerAddSpacePrefix, true);
  m.remove_extra_whitespaces = g.get_bool(gguf_key::kTokenizerRemoveExtraWhitespaces, false);
  m.escape_whitespaces = true;
  SpecialTokens sp;
  sp.bos = opt_id(g, gguf_key::kTokenizerBosId, m.pieces.size());
  sp.eos = opt_id(g, gguf_key::kTokenizerEosId, m.pieces.size());
  sp.unk = opt_id(g, gguf_key::kTokenizerUnknownId, m.pieces.size());
  sp.pad = opt_id(g, gguf_key::kTokenizerPaddingId, m.pieces.size());
  sp.add_bos = g.get_bool(gguf_key::kTokenizerAddBos, true);
  sp.add_eos = g.get_bool(gguf_key::kTokenizerAddEos, false);
  return std::make_unique<SentencePieceTokenizer>(std::move(m), g.path(), &sp);
}

std::unique_ptr<Tokenizer> bpe_from_gguf(const GgufFile& g) {
  Vocab v = read_vocab(g);
  ByteLevelBpeConfig c;
  const std::string pre = g.get_string(gguf_key::kTokenizerPre, "");
  if (pre.empty())
    fail(g.path() + ": " + gguf_key::kTokenizerPre,
         "missing; the pre-tokenizer cannot be inferred (expected e.g. gpt-2, llama-bpe, qwen2)");
  if (!pretokenizer_from_gguf_name(pre, &c.pretokenizer))
    fail(g.path() + ": " + gguf_key::kTokenizerPre,
         "unsupported pre-tokenizer \"" + pre + "\" (supported: the gpt-2, smollm, llama3 and qwen2 families)");
  const bool llama3 = gguf_pre_ignores_merges(pre);
  c.ignore_merges = llama3;
  const GgufValue& merges = g.get(gguf_key::kTokenizerMerges);
  c.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string_view m = merges.string_at(i);
    const size_t sp = m.find(' ', 1);
    if (sp == std::string_view::npos)
      fail(g.path() + ": " + std::string(gguf_key::kTokenizerMerges) + "[" + std::to_string(i) + "]",
           "expected \"left right\", got \"" + std::string(m) + "\"");
    c.merges.emplace_back(std::string(m.substr(0, sp)), std::string(m.substr(sp + 1)));
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] == 4) c.added.push_back(AddedToken{v.tokens[i], int32_t(i), false, false, false, false});
  }
  c.special.bos = opt_id(g, gguf_key::kTokenizerBosId, v.tokens.size());
  c.special.eos = opt_id(g, gguf_key::kTokenizerEosId, v.tokens.size());
  c.special.unk = opt_id(g, gguf_key::kTokenizerUnknownId, v.tokens.size());
  c.special.pad = opt_id(g, gguf_key::kTokenizerPaddingId, v.tokens.size());
  c.special.add_bos = g.get_bool(gguf_key::kTokenizerAddBos, llama3);
  c.special.add_eos = g.get_bool(gguf_key::kTokenizerAddEos, false);
  c.vocab = std::move(v.tokens);
  auto tok = std::make_unique<ByteLevelBpeTokenizer>(std::move(c), g.path());
  return tok;
}

std::unique_ptr<Tokenizer> wordpiece_from_gguf(const GgufFile& g) {
  Vocab v = read_vocab(g);
  WordPieceConfig c;
  // convert_hf_to_gguf.py rewrites BERT vocabularies: "##x" -> "x", "x" -> "\u2581x",
  // "[...]" unchanged. Undo it so the tokenizer works on the original vocabulary.
  const std::string phantom = "\xe2\x96\x81";
  c.vocab.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const std::string& t = v.tokens[i];
    if (t.compare(0, phantom.size(), phantom) == 0) c.vocab.push_back(t.substr(phantom.size()));
    else if (v.types[i] == 3 || (t.size() >= 2 && t.front() == '[' && t.back() == ']')) c.vocab.push_back(t);
    else c.vocab.push_back("##" + t);
  }
  c.lowercase = g.get_bool(gguf_key::kTokenizerLowercase, true);
  c.strip_accents = g.get_bool(gguf_key::kTokenizerStripAccents, c.lowercase);
  c.special.unk = opt_id(g, gguf_key::kTokenizerUnknownId, v.tokens.size());
  c.special.cls = opt_id(g, gguf_key::kTokenizerClsId, v.tokens.size());
  if (c.special.cls < 0) c.special.cls = opt_id(g, gguf_key::kTokenizerBosId, v.tokens.size());
  c.special.sep = opt_id(g, gguf_key::kTokenizerSeparatorId, v.tokens.size());
  if (c.special.sep < 0) c.special.sep = opt_id(g, gguf_key::kTokenizerEosId, v.tokens.size());
  c.special.pad = opt_id(g, gguf_key::kTokenizerPaddingId, v.tokens.size());
  c.special.mask = opt_id(g, gguf_key::kTokenizerMaskId, v.tokens.size());
  c.special.add_bos = c.special.cls >= 0;
  c.special.add_eos = c.special.sep >= 0;
  for (size_t i = 0; i < c.vocab.size(); ++i)
    if (v.types[i] == 4) c.added.push_back(AddedToken{c.vocab[i], int32_t(i), false, false, false, false});
  return std::make_unique<WordPieceTokenizer>(std::move(c), g.path());
}

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& g) {
  const GgufValue& model = g.get(gguf_key::kTokenizerModel);
  const std::string name(model.as_string());
  if (name == "llama") return spm_from_gguf(g);
  if (name == "gpt2") return bpe_from_gguf(g);
  if (name == "bert") return wordpiece_from_gguf(g);
  fail(g.path() + ": " + gguf_key::kTokenizerModel,
       "expected \"llama\", \"gpt2\" or \"bert\", got \"" + name + "\"");
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  GgufFile g(path);
  return load_gguf_tokenizer(g);
}

}  // namespace gemkit
