#include "tokenizers/wordpiece_tokenizer.h"

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizers/unicode.h"

namespace gemkit {

namespace {

bool is_chinese_char(uint32_t c) {
  // The ranges of BERT / tokenizers' BertNormalizer (including its 0x2B920 typo).
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_bert_punct(uint32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
         (c >= 123 && c <= 126) || unicode::is_punctuation(c);
}

bool is_bert_space(uint32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || unicode::is_whitespace(c);
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(WordPieceConfig config, const std::string& where)
    : where_(where), vocab_(std::move(config.vocab)), cfg_(std::move(config)) {
  special_ = cfg_.special;
  for (const auto& a : cfg_.added) {
    if (a.id < 0) fail(where_, "added token \"" + a.content + "\": negative id");
    if (static_cast<size_t>(a.id) >= vocab_.size()) vocab_.resize(a.id + 1);
    if (vocab_[a.id].empty()) vocab_[a.id] = a.content;
    added_.add(a);
  }
  for (size_t i = 0; i < vocab_.size(); ++i)
    if (!vocab_[i].empty()) token_to_id_.emplace(vocab_[i], static_cast<int32_t>(i));
  if (special_.unk < 0) fail(where_, "unk_token: WordPiece needs an unknown token ([UNK]), none found");
  is_special_.assign(vocab_.size(), 0);
  for (const auto& a : cfg_.added)
    if (a.special) is_special_[a.id] = 1;
  for (int32_t id : {special_.cls, special_.sep, special_.pad, special_.mask, special_.unk,
                     special_.bos, special_.eos})
    if (id >= 0 && id < vocab_size()) is_special_[id] = 1;
}

std::string WordPieceTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail(where_, "token id " + std::to_string(id) + " out of range [0, " + std::to_string(vocab_size()) + ")");
  return vocab_[id];
}

std::vector<std::string> WordPieceTokenizer::words(std::string_view text) const {
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const uint32_t c = unicode::decode_utf8(text, i);
    if (cfg_.clean_text) {
      if (c == 0 || c == 0xFFFD) continue;
      if (c != '\t' && c != '\n' && c != '\r' && unicode::is_control_or_format(c)) continue;
      if (is_bert_space(c)) {
        cps.push_back(' ');
        continue;
      }
    }
    if (cfg_.handle_chinese_chars && is_chinese_char(c)) {
      cps.push_back(' ');
      cps.push_back(c);
      cps.push_back(' ');
      continue;
    }
    cps.push_back(c);
  }
  if (cfg_.strip_accents) {
    cps = unicode::nfd(cps);
    std::vector<uint32_t> kept;
    kept.reserve(cps.size());
    for (uint32_t c : cps)
      if (!unicode::is_nonspacing_mark(c)) kept.push_back(c);
    cps.swap(kept);
  }
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (uint32_t c : cps) {
    if (cfg_.lowercase) c = unicode::to_lower(c);
    if (is_bert_space(c)) {
      flush();
    } else if (is_bert_punct(c)) {
      flush();
      out.push_back(unicode::to_utf8(c));
    } else {
      unicode::append_utf8(cur, c);
    }
  }
  flush();
  return out;
}

void WordPieceTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  size_t n_chars = 0;
  for (unsigned char c : word) n_chars += (c & 0xC0) != 0x80;
  if (n_chars > cfg_.max_input_chars_per_word) {
    out.push_back(special_.unk);
    return;
  }
  const size_t first = out.size();
  size_t start = 0;
  std::string candidate;
  while (start < word.size()) {
    size_t end = word.size();
    int32_t found = -1;
    while (end > start) {
      candidate.clear();
      if (start > 0) candidate = cfg_.continuing_prefix;
      candidate.append(word, start, end - start);
      auto it = token_to_id_.find(candidate);
      if (it != token_to_id_.end()) {
        found = it->second;
        break;
      }
      // Step back one whole UTF-8 character.
      do --end;
      while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (found < 0) {
      out.resize(first);
      out.push_back(special_.unk);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  const int32_t cls = special_.cls >= 0 ? special_.cls : special_.bos;
  const int32_t sep = special_.sep >= 0 ? special_.sep : special_.eos;
  if (add_special && special_.add_bos && cls >= 0) ids.push_back(cls);
  for (const auto& frag : added_.split(text)) {
    if (frag.id >= 0) {
      ids.push_back(frag.id);
      continue;
    }
    for (const std::string& w : words(frag.text)) encode_word(w, ids);
  }
  if (add_special && special_.add_eos && sep >= 0) ids.push_back(sep);
  return ids;
}

std::string WordPieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  // tokenizers' WordPiece decoder: join with spaces, glue "##" pieces, then
  // clean_up_tokenization_spaces.
  std::string out;
  const std::string& pre = cfg_.continuing_prefix;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      fail(where_, "decode: token id " + std::to_string(id) + " out of range [0, " +
                       std::to_string(vocab_size()) + ")");
    if (skip_special && is_special_[id]) continue;
    const std::string& t = vocab_[id];
    if (!pre.empty() && t.size() > pre.size() && t.compare(0, pre.size(), pre) == 0) {
      out.append(t, pre.size(), std::string::npos);
    } else {
      if (!out.empty()) out += ' ';
      out += t;
    }
  }
  static const std::pair<std::string_view, std::string_view> cleanup[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : cleanup) {
    std::string r;
    r.reserve(out.size());
    for (size_t i = 0; i < out.size();) {
      if (out.compare(i, from.size(), from) == 0) {
        r += to;
        i += from.size();
      } else {
        r += out[i++];
      }
    }
    out.swap(r);
  }
  return out;
}

WordPieceConfig wordpiece_config_from_vocab_txt(const std::string& path, bool lowercase) {
  const std::string text = read_text_file(path);
  WordPieceConfig cfg;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    cfg.vocab.push_back(line);
    start = end + 1;
  }
  if (cfg.vocab.empty()) fail(path, "vocab: expected one token per line, got an empty file");
  auto find = [&](const char* name) -> int32_t {
    for (size_t i = 0; i < cfg.vocab.size(); ++i)
      if (cfg.vocab[i] == name) return static_cast<int32_t>(i);
    return -1;
  };
  cfg.special.unk = find("[UNK]");
  cfg.special.cls = find("[CLS]");
  cfg.special.sep = find("[SEP]");
  cfg.special.pad = find("[PAD]");
  cfg.special.mask = find("[MASK]");
  if (cfg.special.unk < 0) fail(path, "[UNK]: expected the unknown token in the vocabulary, not found");
  cfg.special.add_bos = cfg.special.cls >= 0;
  cfg.special.add_eos = cfg.special.sep >= 0;
  cfg.lowercase = lowercase;
  cfg.strip_accents = lowercase;
  for (const char* name : {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"}) {
    const int32_t id = find(name);
    if (id >= 0) cfg.added.push_back(AddedToken{name, id, true, false, false, false});
  }
  return cfg;
}

}  // namespace gemkit
