#include "tokenizers/spm_tokenizer.h"

#include <cfloat>
#include <cstdio>
#include <functional>
#include <queue>

#include "core/error.h"
#include "tokenizers/unicode.h"

namespace gemkit {

namespace {
const std::string_view kSpace = "\xe2\x96\x81";

int piece_to_byte(std::string_view p) {
  // "<0xNN>" with upper-case hex, as sentencepiece writes them.
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}
}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceModel model, const std::string& where,
                                               const SpecialTokens* special)
    : model_(std::move(model)), where_(where) {
  if (model_.model_type != SentencePieceModel::BPE && model_.model_type != SentencePieceModel::UNIGRAM)
    fail(where_, "trainer_spec.model_type: expected unigram (1) or bpe (2), got " +
                     std::to_string(model_.model_type) + " (word/char models are not supported)");
  for (int& b : byte_ids_) b = -1;
  min_score_ = FLT_MAX;
  max_score_ = FLT_MIN;  // sentencepiece's (odd but significant) initial value
  bool any_byte = false;
  for (size_t i = 0; i < model_.pieces.size(); ++i) {
    const auto& p = model_.pieces[i];
    const int32_t id = static_cast<int32_t>(i);
    const bool normal = p.type == SentencePieceModel::NORMAL ||
                        p.type == SentencePieceModel::USER_DEFINED ||
                        p.type == SentencePieceModel::UNUSED;
    auto& target = normal ? pieces_ : reserved_;
    if (!target.emplace(p.piece, id).second)
      fail(where_, "pieces[" + std::to_string(i) + "]: piece \"" + p.piece + "\" is defined twice");
    if (p.type == SentencePieceModel::USER_DEFINED) user_defined_.insert(p.piece, id);
    if (p.type == SentencePieceModel::UNKNOWN) {
      if (unk_id_ >= 0) fail(where_, "pieces[" + std::to_string(i) + "]: a second unknown piece");
      unk_id_ = id;
    }
    if (p.type == SentencePieceModel::BYTE) {
      const int b = piece_to_byte(p.piece);
      if (b < 0) fail(where_, "pieces[" + std::to_string(i) + "]: byte piece \"" + p.piece + "\" is not <0xNN>");
      byte_ids_[b] = id;
      any_byte = true;
    }
    if (p.type == SentencePieceModel::NORMAL) {
      min_score_ = std::min(min_score_, p.score);
      max_score_ = std::max(max_score_, p.score);
    }
    if (model_.model_type == SentencePieceModel::UNIGRAM && normal) unigram_trie_.insert(p.piece, id);
  }
  if (unk_id_ < 0) fail(where_, "pieces: expected one piece of type UNKNOWN (<unk>), found none");
  if (model_.byte_fallback || any_byte) {
    model_.byte_fallback = true;
    for (int b = 0; b < 256; ++b)
      if (byte_ids_[b] < 0) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        fail(where_, std::string("pieces: byte_fallback needs all 256 byte pieces, missing ") + buf);
      }
  }
  normalizer_ = SpmNormalizer(model_, &user_defined_, where_);

  if (special) {
    special_ = *special;
  } else {
    auto control = [&](int32_t id) { return is_type(id, SentencePieceModel::CONTROL) ? id : -1; };
    special_.unk = unk_id_;
    special_.bos = control(model_.bos_id);
    special_.eos = control(model_.eos_id);
    special_.pad = control(model_.pad_id);
    // Llama-style models prepend BOS; that is the convention of every SentencePiece LM we load.
    special_.add_bos = special_.bos >= 0;
    special_.add_eos = false;
  }
}

std::string SentencePieceTokenizer::kind() const {
  return model_.model_type == SentencePieceModel::BPE ? "sentencepiece-bpe" : "sentencepiece-unigram";
}

std::string SentencePieceTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail(where_, "token id " + std::to_string(id) + " out of range [0, " + std::to_string(vocab_size()) + ")");
  return model_.pieces[id].piece;
}

int32_t SentencePieceTokenizer::piece_to_id(std::string_view piece) const {
  if (auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
  if (auto it = pieces_.find(piece); it != pieces_.end()) return it->second;
  return unk_id_;
}

void SentencePieceTokenizer::encode_bpe(std::string_view normalized, Result& out) const {
  struct Symbol {
    int prev, next;
    bool freeze;
    std::string_view piece;
  };
  struct Pair {
    int left, right;
    float score;
    size_t size;
  };
  // Highest score first; among equal scores the leftmost pair (bpe_model.cc's comparator).
  auto cmp = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(cmp)> agenda(cmp);
  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  // Pieces of type UNUSED may be formed by merges but are then split back (resegment).
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

  auto add_pair = [&](int left, int right) {
    if (left == -1 || right == -1 || symbols[left].freeze || symbols[right].freeze) return;
    const std::string_view piece(symbols[left].piece.data(),
                                 symbols[left].piece.size() + symbols[right].piece.size());
    auto it = pieces_.find(piece);
    if (it == pieces_.end()) return;
    const auto& p = model_.pieces[it->second];
    agenda.push(Pair{left, right, p.score, piece.size()});
    if (p.type == SentencePieceModel::UNUSED)
      rev_merge[piece] = {symbols[left].piece, symbols[right].piece};
  };

  int index = 0;
  while (!normalized.empty()) {
    Symbol s{};
    int32_t v;
    size_t len = user_defined_.empty() ? 0 : user_defined_.longest(normalized, &v);
    s.freeze = len > 0;
    if (len == 0)
      len = std::min(normalized.size(), unicode::utf8_len(static_cast<unsigned char>(normalized[0])));
    s.piece = normalized.substr(0, len);
    s.prev = index == 0 ? -1 : index - 1;
    normalized.remove_prefix(len);
    s.next = normalized.empty() ? -1 : index + 1;
    ++index;
    symbols.push_back(s);
  }
  if (symbols.empty()) return;
  for (size_t i = 1; i < symbols.size(); ++i) add_pair(int(i) - 1, int(i));

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = symbols[top.left];
    Symbol& r = symbols[top.right];
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size) continue;
    l.piece = std::string_view(l.piece.data(), l.piece.size() + r.piece.size());
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = top.left;
    r.piece = std::string_view();
    add_pair(l.prev, top.left);
    add_pair(top.left, l.next);
  }

  std::function<void(std::string_view)> resegment = [&](std::string_view w) {
    const int32_t id = piece_to_id(w);
    if (!is_type(id, SentencePieceModel::UNUSED)) {
      out.emplace_back(w, id);
      return;
    }
    auto p = rev_merge.find(w);
    if (p == rev_merge.end()) {
      out.emplace_back(w, id);
      return;
    }
    resegment(p->second.first);
    resegment(p->second.second);
  };
  for (int i = 0; i != -1; i = symbols[i].next) resegment(symbols[i].piece);
}

void SentencePieceTokenizer::encode_unigram(std::string_view normalized, Result& out) const {
  struct Node {
    int32_t id = -1;
    float score = 0;
    int starts_at = -1;
  };
  const int size = static_cast<int>(normalized.size());
  const float unk_score = min_score_ - 10.0f;  // kUnkPenalty
  std::vector<Node> best(size + 1);
  int starts_at = 0;
  while (starts_at < size) {
    const float score_here = best[starts_at].score;
    bool has_single_node = false;
    const int mblen = std::min<int>(
        static_cast<int>(unicode::utf8_len(static_cast<unsigned char>(normalized[starts_at]))),
        size - starts_at);
    unigram_trie_.prefixes(normalized.substr(starts_at), [&](size_t len, int32_t id) {
      const auto& p = model_.pieces[id];
      if (p.type == SentencePieceModel::UNUSED) return;
      Node& target = best[starts_at + len];
      // Exactly unigram_model.cc's arithmetic: the ternary's `- 0.1` makes the score a double,
      // so candidates are summed and compared in double and stored back as float. Ties and
      // near-ties resolve differently in pure float.
      const double score = p.type == SentencePieceModel::USER_DEFINED
                               ? static_cast<double>(static_cast<float>(len) * max_score_) - 0.1
                               : static_cast<double>(p.score);
      const double candidate = score + static_cast<double>(score_here);
      if (target.starts_at == -1 || candidate > static_cast<double>(target.score)) {
        target.score = static_cast<float>(candidate);
        target.starts_at = starts_at;
        target.id = id;
      }
      if (!has_single_node && static_cast<int>(len) == mblen) has_single_node = true;
    });
    if (!has_single_node) {
      Node& target = best[starts_at + mblen];
      const float candidate = unk_score + score_here;
      if (target.starts_at == -1 || candidate > target.score) {
        target.score = candidate;
        target.starts_at = starts_at;
        target.id = unk_id_;
      }
    }
    starts_at += mblen;
  }
  const size_t first = out.size();
  for (int ends_at = size; ends_at > 0;) {
    const Node& n = best[ends_at];
    out.emplace_back(normalized.substr(n.starts_at, ends_at - n.starts_at), n.id);
    ends_at = n.starts_at;
  }
  std::reverse(out.begin() + first, out.end());
}

void SentencePieceTokenizer::encode_into(std::string_view text, std::vector<int32_t>& ids) const {
  const std::string normalized = normalizer_.normalize(text);
  Result pieces;
  pieces.reserve(normalized.size() / 2 + 1);
  if (model_.model_type == SentencePieceModel::BPE) encode_bpe(normalized, pieces);
  else encode_unigram(normalized, pieces);
  bool prev_unk = false;
  for (const auto& [w, id] : pieces) {
    const bool unk = id == unk_id_;
    if (unk && model_.byte_fallback) {
      for (char c : w) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    } else if (!(unk && prev_unk)) {
      // Runs of unknown pieces collapse into one <unk>, as sentencepiece does.
      ids.push_back(id);
    }
    prev_unk = unk;
  }
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special && special_.add_bos && special_.bos >= 0) ids.push_back(special_.bos);
  encode_into(text, ids);
  if (add_special && special_.add_eos && special_.eos >= 0) ids.push_back(special_.eos);
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string text;
  std::string bytes;
  auto flush_bytes = [&] {
    // Valid UTF-8 sequences are copied; each structurally invalid byte becomes U+FFFD.
    for (size_t i = 0; i < bytes.size();) {
      size_t j = i;
      const uint32_t cp = unicode::decode_utf8(bytes, j);
      if (cp == 0xFFFD && j - i != 3) text += "\xEF\xBF\xBD";
      else text.append(bytes, i, j - i);
      i = j;
    }
    bytes.clear();
  };
  const bool strip_bos_ws = model_.add_dummy_prefix || model_.remove_extra_whitespaces;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      fail(where_, "decode: token id " + std::to_string(id) + " out of range [0, " +
                       std::to_string(vocab_size()) + ")");
    const auto& p = model_.pieces[id];
    if (p.type == SentencePieceModel::BYTE) {
      bytes += static_cast<char>(piece_to_byte(p.piece));
      continue;
    }
    flush_bytes();
    if (p.type == SentencePieceModel::CONTROL) {
      if (!skip_special) text += p.piece;
      continue;
    }
    if (p.type == SentencePieceModel::UNKNOWN) {
      text += model_.unk_surface;
      continue;
    }
    std::string_view piece = p.piece;
    if (text.empty() && strip_bos_ws && piece.substr(0, kSpace.size()) == kSpace)
      piece.remove_prefix(kSpace.size());
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpace.size(), kSpace) == 0) {
        text += ' ';
        i += kSpace.size();
      } else {
        text += piece[i++];
      }
    }
  }
  flush_bytes();
  return text;
}

}  // namespace gemkit
