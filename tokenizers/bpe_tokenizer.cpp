#include "tokenizers/bpe_tokenizer.h"

#include <queue>

#include "core/error.h"
#include "tokenizers/unicode.h"

namespace gemkit {

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(ByteLevelBpeConfig config, const std::string& where)
    : where_(where),
      vocab_(std::move(config.vocab)),
      pretokenizer_(config.pretokenizer),
      ignore_merges_(config.ignore_merges) {
  special_ = config.special;
  for (const auto& a : config.added) {
    if (a.id < 0) fail(where_, "added token \"" + a.content + "\": negative id");
    if (static_cast<size_t>(a.id) >= vocab_.size()) vocab_.resize(a.id + 1);
    if (vocab_[a.id].empty()) vocab_[a.id] = a.content;
  }
  token_to_id_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i)
    if (!vocab_[i].empty()) token_to_id_.emplace(vocab_[i], static_cast<int32_t>(i));
  for (int b = 0; b < 256; ++b) {
    auto it = token_to_id_.find(unicode::to_utf8(unicode::byte_to_codepoint(static_cast<uint8_t>(b))));
    byte_id_[b] = it == token_to_id_.end() ? -1 : it->second;
  }
  merges_.reserve(config.merges.size());
  for (size_t r = 0; r < config.merges.size(); ++r) {
    const auto& [a, b] = config.merges[r];
    auto ia = token_to_id_.find(a), ib = token_to_id_.find(b), im = token_to_id_.find(a + b);
    if (ia == token_to_id_.end() || ib == token_to_id_.end() || im == token_to_id_.end())
      fail(where_, "merges[" + std::to_string(r) + "]: \"" + a + " " + b +
                       "\" uses a token that is not in the vocabulary");
    const uint64_t key = (uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second);
    merges_.emplace(key, std::make_pair(static_cast<int32_t>(r), im->second));  // first rank wins
  }
  is_special_.assign(vocab_.size(), 0);
  is_added_.assign(vocab_.size(), 0);
  for (const auto& a : config.added) {
    added_.add(a);
    is_added_[a.id] = 1;
    if (a.special) is_special_[a.id] = 1;
  }
  for (int32_t id : {special_.bos, special_.eos, special_.pad, special_.unk})
    if (id >= 0 && id < vocab_size()) is_special_[id] = 1;
}

std::string ByteLevelBpeTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail(where_, "token id " + std::to_string(id) + " out of range [0, " + std::to_string(vocab_size()) + ")");
  return vocab_[id];
}

void ByteLevelBpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (ignore_merges_ || piece.size() == 1) {
    std::string mapped;
    mapped.reserve(piece.size() * 2);
    for (unsigned char c : piece) unicode::append_utf8(mapped, unicode::byte_to_codepoint(c));
    auto it = token_to_id_.find(mapped);
    if (it != token_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Symbols start as single bytes (each byte's token) in a doubly linked list.
  struct Sym {
    int32_t id;
    int prev, next;
  };
  const int n = static_cast<int>(piece.size());
  std::vector<Sym> syms(n);
  for (int i = 0; i < n; ++i) {
    const int32_t id = byte_id_[static_cast<unsigned char>(piece[i])];
    if (id < 0)
      fail(where_, "vocabulary has no token for byte " + std::to_string(static_cast<unsigned char>(piece[i])) +
                       " (not a byte-level BPE vocabulary?)");
    syms[i] = {id, i - 1, i + 1 < n ? i + 1 : -1};
  }
  struct Cand {
    int32_t rank;
    int left;
    int32_t left_id, right_id;
  };
  auto cmp = [](const Cand& a, const Cand& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(cmp)> q(cmp);
  auto try_add = [&](int left) {
    if (left < 0) return;
    const int right = syms[left].next;
    if (right < 0) return;
    const uint64_t key = (uint64_t(uint32_t(syms[left].id)) << 32) | uint32_t(syms[right].id);
    auto it = merges_.find(key);
    if (it != merges_.end()) q.push({it->second.first, left, syms[left].id, syms[right].id});
  };
  for (int i = 0; i + 1 < n; ++i) try_add(i);
  while (!q.empty()) {
    const Cand c = q.top();
    q.pop();
    Sym& l = syms[c.left];
    // Stale candidates: the left symbol changed or its right neighbour did.
    if (l.id != c.left_id || l.next < 0 || syms[l.next].id != c.right_id) continue;
    const int r = l.next;
    l.id = merges_.find((uint64_t(uint32_t(c.left_id)) << 32) | uint32_t(c.right_id))->second.second;
    l.next = syms[r].next;
    if (l.next >= 0) syms[l.next].prev = c.left;
    syms[r].id = -1;
    try_add(l.prev);
    try_add(c.left);
  }
  for (int i = 0; i != -1 && i < n; i = syms[i].next) out.push_back(syms[i].id);
}

std::vector<int32_t> ByteLevelBpeTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_special && special_.add_bos && special_.bos >= 0) ids.push_back(special_.bos);
  for (const auto& frag : added_.split(text)) {
    if (frag.id >= 0) {
      ids.push_back(frag.id);
      continue;
    }
    for (std::string_view piece : pretokenize(pretokenizer_, frag.text)) encode_piece(piece, ids);
  }
  if (add_special && special_.add_eos && special_.eos >= 0) ids.push_back(special_.eos);
  return ids;
}

std::string ByteLevelBpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  // Raw bytes are returned as they are (possibly an incomplete UTF-8 sequence at the end),
  // so that streaming callers can join pieces losslessly.
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      fail(where_, "decode: token id " + std::to_string(id) + " out of range [0, " +
                       std::to_string(vocab_size()) + ")");
    if (is_special_[id] && skip_special) continue;
    const std::string& t = vocab_[id];
    if (is_added_[id]) {
      out += t;
      continue;
    }
    for (size_t i = 0; i < t.size();) {
      const uint32_t cp = unicode::decode_utf8(t, i);
      const int b = unicode::codepoint_to_byte(cp);
      if (b >= 0) out += static_cast<char>(b);
      else unicode::append_utf8(out, cp);  // not from the byte alphabet: keep verbatim
    }
  }
  return out;
}

}  // namespace gemkit
