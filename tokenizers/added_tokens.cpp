#include "tokenizers/added_tokens.h"

#include "tokenizers/unicode.h"

namespace gemkit {

void AddedTokenMatcher::add(const AddedToken& t) {
  if (t.content.empty()) return;
  trie_.insert(t.content, static_cast<int32_t>(tokens_.size()));
  tokens_.push_back(t);
}

namespace {
// lstrip/rstrip only need ASCII whitespace; testing single bytes >= 0x80 would misread UTF-8.
bool ascii_space(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x80 && unicode::is_whitespace(u);
}
bool is_word_char(std::string_view s, size_t byte_pos, bool before) {
  // The code point just before (or at) byte_pos is a letter/number/underscore.
  if (before) {
    if (byte_pos == 0) return false;
    size_t i = byte_pos - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    const uint32_t cp = unicode::decode_utf8(s, i);
    return unicode::is_letter(cp) || unicode::is_number(cp) || cp == '_';
  }
  if (byte_pos >= s.size()) return false;
  size_t i = byte_pos;
  const uint32_t cp = unicode::decode_utf8(s, i);
  return unicode::is_letter(cp) || unicode::is_number(cp) || cp == '_';
}
}  // namespace

std::vector<AddedTokenMatcher::Fragment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Fragment> out;
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({text, -1});
    return out;
  }
  size_t raw_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int32_t idx = -1;
    size_t len = 0;
    // Longest match at this position that satisfies single_word.
    trie_.prefixes(text.substr(pos), [&](size_t n, int32_t v) {
      const AddedToken& t = tokens_[v];
      if (t.single_word && (is_word_char(text, pos, true) || is_word_char(text, pos + n, false)))
        return;
      len = n;
      idx = v;
    });
    if (idx < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[idx];
    size_t raw_end = pos;
    if (t.lstrip)
      while (raw_end > raw_start && ascii_space(text[raw_end - 1]))
        --raw_end;
    if (raw_end > raw_start) out.push_back({text.substr(raw_start, raw_end - raw_start), -1});
    out.push_back({text.substr(pos, len), t.id});
    pos += len;
    if (t.rstrip)
      while (pos < text.size() && ascii_space(text[pos])) ++pos;
    raw_start = pos;
  }
  if (raw_start < text.size()) out.push_back({text.substr(raw_start), -1});
  return out;
}

}  // namespace gemkit
