// Hugging Face tokenizer.json (byte-level BPE, WordPiece), GPT-2's encoder.json + vocab.bpe,
// BERT's vocab.txt and SentencePiece's tokenizer.model.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizers/bpe_tokenizer.h"
#include "tokenizers/spm_tokenizer.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_loaders.h"
#include "tokenizers/wordpiece_tokenizer.h"

namespace gemkit {

using nlohmann::json;

namespace {

json parse_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
}

const json* member(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const json& j, const char* key, bool fallback) {
  const json* v = member(j, key);
  return v && v->is_boolean() ? v->get<bool>() : fallback;
}

// Collects every object with "type" == type anywhere below j (pre_tokenizer Sequences).
void find_typed(const json& j, const std::string& type, std::vector<const json*>& out) {
  if (j.is_object()) {
    if (auto t = member(j, "type"); t && t->is_string() && t->get<std::string>() == type) out.push_back(&j);
    for (auto& [k, v] : j.items()) find_typed(v, type, out);
  } else if (j.is_array()) {
    for (auto& v : j) find_typed(v, type, out);
  }
}

std::vector<AddedToken> read_added_tokens(const json& root, const std::string& path) {
  std::vector<AddedToken> out;
  const json* added = member(root, "added_tokens");
  if (!added) return out;
  if (!added->is_array()) fail(path, "added_tokens: expected an array, got " + std::string(added->type_name()));
  for (size_t i = 0; i < added->size(); ++i) {
    const json& a = (*added)[i];
    const json* content = member(a, "content");
    const json* id = member(a, "id");
    if (!content || !content->is_string() || !id || !id->is_number_integer())
      fail(path, "added_tokens[" + std::to_string(i) + "]: expected {\"id\": int, \"content\": string}");
    AddedToken t;
    t.content = content->get<std::string>();
    t.id = id->get<int32_t>();
    t.special = get_bool(a, "special", false);
    t.lstrip = get_bool(a, "lstrip", false);
    t.rstrip = get_bool(a, "rstrip", false);
    t.single_word = get_bool(a, "single_word", false);
    out.push_back(t);
  }
  return out;
}

// Token text named in tokenizer_config.json: a string or {"content": ...}.
std::string config_token(const json& cfg, const char* key) {
  const json* v = member(cfg, key);
  if (!v) return {};
  if (v->is_string()) return v->get<std::string>();
  if (const json* c = member(*v, "content"); c && c->is_string()) return c->get<std::string>();
  return {};
}

std::string sibling(const std::string& path, const std::string& name) {
  const size_t slash = path.find_last_of('/');
  return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + name;
}

// post_processor: which special tokens surround a single sequence ($A).
void read_template(const json& root, SpecialTokens& sp, const std::function<int32_t(const std::string&)>& id_of,
                   std::string& first, std::string& last) {
  const json* pp = member(root, "post_processor");
  if (!pp) return;
  std::vector<const json*> tp;
  find_typed(*pp, "TemplateProcessing", tp);
  if (!tp.empty()) {
    const json* single = member(*tp.front(), "single");
    if (single && single->is_array()) {
      bool seen_a = false;
      for (const json& item : *single) {
        if (const json* s = member(item, "SpecialToken")) {
          const json* id = member(*s, "id");
          if (!id || !id->is_string()) continue;
          if (!seen_a && first.empty()) first = id->get<std::string>();
          if (seen_a) last = id->get<std::string>();
        } else if (member(item, "Sequence")) {
          seen_a = true;
        }
      }
    }
  }
  std::vector<const json*> bp;
  find_typed(*pp, "BertProcessing", bp);
  find_typed(*pp, "RobertaProcessing", bp);
  if (!bp.empty()) {
    const json* cls = member(*bp.front(), "cls");
    const json* sep = member(*bp.front(), "sep");
    if (cls && cls->is_array() && !cls->empty() && (*cls)[0].is_string()) first = (*cls)[0].get<std::string>();
    if (sep && sep->is_array() && !sep->empty() && (*sep)[0].is_string()) last = (*sep)[0].get<std::string>();
  }
  (void)sp;
  (void)id_of;
}

// model.vocab {token: id} -> tokens indexed by id (shared by BPE and WordPiece).
std::vector<std::string> read_vocab(const json& model, const std::string& path) {
  std::vector<std::string> tokens;
  const json* vocab = member(model, "vocab");
  if (!vocab || !vocab->is_object())
    fail(path, "model.vocab: expected an object {token: id}, got " +
                   std::string(vocab ? vocab->type_name() : "nothing"));
  // Ids index the tokens. A vocabulary may leave gaps (a file converted from a token list that
  // repeats a token keeps the first id, so the repeat's id has no entry; Hugging Face's tokenizers
  // hold the vocabulary as a map, where gaps are legal), but a declared id never sizes the table beyond twice the entries plus 256
  // (fuzzer finding: one id of 15.5 million allocated 500 MB; a later one: a GGUF import with a
  // repeated token wrote a gap that the old "below the entries" rule refused).
  const int64_t entries = int64_t(vocab->size()), limit = 2 * entries + 256;
  for (auto& [tok, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      fail(path, "model.vocab[\"" + tok + "\"]: expected a non-negative integer id");
    if (id.get<int64_t>() >= limit)
      fail(path, "model.vocab[\"" + tok + "\"]: id " + std::to_string(id.get<int64_t>()) + " is not below " +
                     std::to_string(limit) + " (twice the " + std::to_string(entries) +
                     " entries of the vocabulary plus 256: gaps are allowed, a table that size is not)");
    const auto i = id.get<size_t>();
    if (i >= tokens.size()) tokens.resize(i + 1);
    tokens[i] = tok;
  }
  return tokens;
}

ByteLevelBpeConfig bpe_config_from_json(const json& root, const json& model, const std::string& path) {
  ByteLevelBpeConfig c;
  c.vocab = read_vocab(model, path);
  const json* merges = member(model, "merges");
  if (!merges || !merges->is_array()) fail(path, "model.merges: expected an array");
  c.merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& m = (*merges)[i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos)
        fail(path, "model.merges[" + std::to_string(i) + "]: expected \"left right\", got \"" + s + "\"");
      c.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      c.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(path, "model.merges[" + std::to_string(i) + "]: expected \"left right\" or [left, right]");
    }
  }
  c.ignore_merges = get_bool(model, "ignore_merges", false);

  // Pre-tokenizer: a Split regex we know, or ByteLevel with its built-in GPT-2 regex, or
  // (SmolLM, StarCoder) Digits before that ByteLevel.
  const json* pre = member(root, "pre_tokenizer");
  std::vector<const json*> splits, bytelevel, digits;
  if (pre) {
    find_typed(*pre, "Split", splits);
    find_typed(*pre, "ByteLevel", bytelevel);
    find_typed(*pre, "Digits", digits);
  }
  if (bytelevel.empty())
    fail(path, "pre_tokenizer: expected a ByteLevel pre-tokenizer (byte-level BPE); "
               "SentencePiece-style BPE is read from tokenizer.model");
  if (!digits.empty()) {
    // Only the exact pair splits as ours does: the digits first, then GPT-2's regex per piece.
    const json* seq = member(*pre, "pretokenizers");
    const bool pair = seq && seq->is_array() && seq->size() == 2 && &(*seq)[0] == digits.front() &&
                      &(*seq)[1] == bytelevel.front();
    if (!pair || !splits.empty())
      fail(path, "pre_tokenizer: expected Sequence[Digits, ByteLevel] when Digits is used, got another "
                 "combination");
    if (!get_bool(*digits.front(), "individual_digits", false))
      fail(path, "pre_tokenizer.Digits.individual_digits: expected true (runs of digits are not supported), "
                 "got false");
    if (!get_bool(*bytelevel.front(), "use_regex", true))
      fail(path, "pre_tokenizer.ByteLevel.use_regex: expected true after Digits, got false");
    if (get_bool(*bytelevel.front(), "add_prefix_space", false))
      fail(path, "pre_tokenizer.ByteLevel.add_prefix_space: expected false (RoBERTa-style prefix spaces are not supported)");
    c.pretokenizer = PreTokenizer::Smollm;
  } else if (!splits.empty()) {
    const json* pattern = member(*splits.front(), "pattern");
    const json* regex = pattern ? member(*pattern, "Regex") : nullptr;
    if (!regex || !regex->is_string())
      fail(path, "pre_tokenizer.Split.pattern: expected {\"Regex\": ...}");
    if (!pretokenizer_from_regex(regex->get<std::string>(), &c.pretokenizer))
      fail(path, "pre_tokenizer.Split.pattern.Regex: unsupported regex \"" + regex->get<std::string>() +
                     "\" (supported: GPT-2, Llama 3, Qwen2)");
  } else {
    if (!get_bool(*bytelevel.front(), "use_regex", true))
      fail(path, "pre_tokenizer.ByteLevel: use_regex=false without a Split pre-tokenizer is not supported");
    if (get_bool(*bytelevel.front(), "add_prefix_space", false))
      fail(path, "pre_tokenizer.ByteLevel.add_prefix_space: expected false (RoBERTa-style prefix spaces are not supported)");
    c.pretokenizer = PreTokenizer::Gpt2;
  }
  if (const json* norm = member(root, "normalizer")) {
    const json* t = member(*norm, "type");
    const std::string type = t && t->is_string() ? t->get<std::string>() : "";
    // Qwen2 declares NFC; our inputs are passed through unchanged, which equals NFC for text
    // that is already composed (the common case). Anything else would change the output.
    if (type != "NFC")
      fail(path, "normalizer: unsupported normalizer \"" + type + "\" for byte-level BPE (expected none or NFC)");
  }
  c.added = read_added_tokens(root, path);

  auto id_of = [&](const std::string& t) -> int32_t {
    for (const auto& a : c.added) if (a.content == t) return a.id;
    for (size_t i = 0; i < c.vocab.size(); ++i) if (c.vocab[i] == t) return int32_t(i);
    return -1;
  };
  std::string first, last;
  read_template(root, c.special, id_of, first, last);
  json cfg;
  if (file_exists(sibling(path, kTokenizerConfigFile))) cfg = parse_json_file(sibling(path, kTokenizerConfigFile));
  const std::string bos = config_token(cfg, "bos_token"), eos = config_token(cfg, "eos_token");
  const std::string pad = config_token(cfg, "pad_token"), unk = config_token(cfg, "unk_token");
  c.special.bos = !first.empty() ? id_of(first) : bos.empty() ? -1 : id_of(bos);
  c.special.eos = !eos.empty() ? id_of(eos) : last.empty() ? -1 : id_of(last);
  c.special.pad = pad.empty() ? -1 : id_of(pad);
  c.special.unk = unk.empty() ? -1 : id_of(unk);
  c.special.add_bos = get_bool(cfg, "add_bos_token", !first.empty());
  c.special.add_eos = get_bool(cfg, "add_eos_token", !last.empty());
  if (c.special.bos < 0) c.special.add_bos = false;
  if (c.special.eos < 0) c.special.add_eos = false;
  return c;
}

std::unique_ptr<Tokenizer> bpe_from_json(const json& root, const json& model, const std::string& path) {
  return std::make_unique<ByteLevelBpeTokenizer>(bpe_config_from_json(root, model, path), path);
}

std::unique_ptr<Tokenizer> wordpiece_from_json(const json& root, const json& model, const std::string& path) {
  WordPieceConfig c;
  c.vocab = read_vocab(model, path);
  if (const json* p = member(model, "continuing_subword_prefix"); p && p->is_string())
    c.continuing_prefix = p->get<std::string>();
  if (const json* m = member(model, "max_input_chars_per_word"); m && m->is_number_integer())
    c.max_input_chars_per_word = m->get<size_t>();
  if (const json* norm = member(root, "normalizer")) {
    std::vector<const json*> bert;
    find_typed(*norm, "BertNormalizer", bert);
    if (bert.empty()) {
      const json* t = member(*norm, "type");
      fail(path, "normalizer: expected BertNormalizer for WordPiece, got \"" +
                     (t && t->is_string() ? t->get<std::string>() : std::string("?")) + "\"");
    }
    const json& b = *bert.front();
    c.clean_text = get_bool(b, "clean_text", true);
    c.handle_chinese_chars = get_bool(b, "handle_chinese_chars", true);
    c.lowercase = get_bool(b, "lowercase", true);
    c.strip_accents = get_bool(b, "strip_accents", c.lowercase);  // null follows lowercase
  } else {
    c.clean_text = c.handle_chinese_chars = c.lowercase = c.strip_accents = false;
  }
  c.added = read_added_tokens(root, path);
  auto id_of = [&](const std::string& t) -> int32_t {
    for (const auto& a : c.added) if (a.content == t) return a.id;
    for (size_t i = 0; i < c.vocab.size(); ++i) if (c.vocab[i] == t) return int32_t(i);
    return -1;
  };
  const json* unk = member(model, "unk_token");
  c.special.unk = id_of(unk && unk->is_string() ? unk->get<std::string>() : "[UNK]");
  if (c.special.unk < 0) fail(path, "model.unk_token: not found in the vocabulary");
  std::string first, last;
  read_template(root, c.special, id_of, first, last);
  c.special.cls = id_of(first.empty() ? "[CLS]" : first);
  c.special.sep = id_of(last.empty() ? "[SEP]" : last);
  c.special.pad = id_of("[PAD]");
  c.special.mask = id_of("[MASK]");
  c.special.add_bos = !first.empty() && c.special.cls >= 0;
  c.special.add_eos = !last.empty() && c.special.sep >= 0;
  return std::make_unique<WordPieceTokenizer>(std::move(c), path);
}

}  // namespace

bool hf_tokenizer_json_is_sentencepiece(const std::string& path) {
  const json root = parse_json_file(path);
  const json* model = member(root, "model");
  if (!model) return false;
  const json* type = member(*model, "type");
  if (type && type->is_string() && type->get<std::string>() == "Unigram") return true;
  std::vector<const json*> bl, meta;
  if (const json* pre = member(root, "pre_tokenizer")) find_typed(*pre, "ByteLevel", bl);
  if (const json* pre = member(root, "pre_tokenizer")) find_typed(*pre, "Metaspace", meta);
  if (const json* norm = member(root, "normalizer")) find_typed(*norm, "Replace", meta);
  return bl.empty() && (get_bool(*model, "byte_fallback", false) || !meta.empty());
}

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path) {
  const json root = parse_json_file(path);
  const json* model = member(root, "model");
  if (!model || !model->is_object()) fail(path, "model: expected an object, got nothing");
  const json* type = member(*model, "type");
  std::string t = type && type->is_string() ? type->get<std::string>() : "";
  if (t.empty()) {  // old files omit the type
    if (member(*model, "merges")) t = "BPE";
    else if (member(*model, "continuing_subword_prefix")) t = "WordPiece";
  }
  if (t == "BPE") return bpe_from_json(root, *model, path);
  if (t == "WordPiece") return wordpiece_from_json(root, *model, path);
  fail(path, "model.type: expected \"BPE\" (byte-level) or \"WordPiece\", got \"" + t + "\"" +
                 (t == "Unigram" ? " (load the SentencePiece tokenizer.model instead)" : ""));
}

ByteLevelBpeConfig load_byte_level_bpe_config(const std::string& path) {
  const json root = parse_json_file(path);
  const json* model = member(root, "model");
  if (!model || !model->is_object()) fail(path, "model: expected an object, got nothing");
  const json* type = member(*model, "type");
  if (!(type && type->is_string() && type->get<std::string>() == "BPE") && !(!type && member(*model, "merges")))
    fail(path, "model.type: expected \"BPE\" (byte-level)");
  return bpe_config_from_json(root, *model, path);
}

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path) {
  SentencePieceModel m = SentencePieceModel::load(path);
  return std::make_unique<SentencePieceTokenizer>(std::move(m), path);
}

std::unique_ptr<Tokenizer> load_wordpiece_vocab(const std::string& path, bool lowercase) {
  return std::make_unique<WordPieceTokenizer>(wordpiece_config_from_vocab_txt(path, lowercase), path);
}

std::unique_ptr<Tokenizer> load_gpt2_encoder(const std::string& encoder_json, const std::string& vocab_bpe) {
  ByteLevelBpeConfig c;
  const json enc = parse_json_file(encoder_json);
  if (!enc.is_object()) fail(encoder_json, "expected an object {token: id}");
  for (auto& [tok, id] : enc.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 26))
      fail(encoder_json, "[\"" + tok + "\"]: expected a non-negative integer id");
    const auto i = id.get<size_t>();
    if (i >= c.vocab.size()) c.vocab.resize(i + 1);
    c.vocab[i] = tok;
  }
  const std::string text = read_text_file(vocab_bpe);
  size_t start = 0, line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ', 1);
    if (sp == std::string::npos)
      fail(vocab_bpe, "line " + std::to_string(line_no) + ": expected \"left right\", got \"" + line + "\"");
    c.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  c.pretokenizer = PreTokenizer::Gpt2;
  for (size_t i = 0; i < c.vocab.size(); ++i)
    if (c.vocab[i] == "<|endoftext|>") {
      c.special.bos = c.special.eos = static_cast<int32_t>(i);
      c.added.push_back(AddedToken{c.vocab[i], int32_t(i), true, false, false, false});
    }
  return std::make_unique<ByteLevelBpeTokenizer>(std::move(c), encoder_json);
}

}  // namespace gemkit
