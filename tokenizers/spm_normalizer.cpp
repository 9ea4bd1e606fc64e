#include "tokenizers/spm_normalizer.h"

#include <cstring>

#include "core/error.h"
#include "tokenizers/unicode.h"

namespace gemkit {

namespace {
const std::string_view kSpace = "\xe2\x96\x81";  // U+2581

// sentencepiece's IsValidDecodeUTF8: a valid sequence, or U+FFFD itself written out.
size_t valid_utf8_len(std::string_view s) {
  size_t i = 0;
  const uint32_t cp = unicode::decode_utf8(s, i);
  if (cp == 0xFFFD && i != 3) return 0;
  return i;
}
}  // namespace

SpmNormalizer::SpmNormalizer(const SentencePieceModel& m, const ByteTrie* user_defined,
                             const std::string& where)
    : add_dummy_prefix_(m.add_dummy_prefix),
      remove_extra_whitespaces_(m.remove_extra_whitespaces),
      escape_whitespaces_(m.escape_whitespaces),
      treat_whitespace_as_suffix_(m.treat_whitespace_as_suffix),
      user_defined_(user_defined),
      charsmap_(m.precompiled_charsmap) {
  if (charsmap_.empty()) return;
  // Layout: u32 trie size in bytes, the double-array units, then the replacement strings.
  const std::string field = "normalizer_spec.precompiled_charsmap (" +
                            (m.normalizer_name.empty() ? std::string("unnamed") : m.normalizer_name) + ")";
  uint32_t trie_bytes = 0;
  if (charsmap_.size() <= 4) fail(where, field + ": expected > 4 bytes, got " + std::to_string(charsmap_.size()));
  std::memcpy(&trie_bytes, charsmap_.data(), 4);
  if (trie_bytes >= charsmap_.size() - 4 + 1 || trie_bytes % 4 != 0 || trie_bytes == 0)
    fail(where, field + ": trie size " + std::to_string(trie_bytes) + " does not fit the " +
                    std::to_string(charsmap_.size()) + "-byte blob");
  // std::string storage is suitably aligned for uint32_t at offset 4 (allocations are
  // 16-byte aligned and 4 is a multiple of 4).
  units_ = reinterpret_cast<const uint32_t*>(charsmap_.data() + 4);
  n_units_ = trie_bytes / 4;
  replacements_ = std::string_view(charsmap_).substr(4 + trie_bytes);
}

// darts-clone DoubleArray::commonPrefixSearch, keeping the longest hit.
size_t SpmNormalizer::charsmap_prefix(std::string_view s, std::string_view* replacement) const {
  auto offset = [](uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  auto label = [](uint32_t u) { return u & ((1u << 31) | 0xFF); };
  auto has_leaf = [](uint32_t u) { return ((u >> 8) & 1) == 1; };
  auto value = [](uint32_t u) { return u & ((1u << 31) - 1); };
  size_t best = 0;
  uint32_t best_value = 0;
  size_t pos = offset(units_[0]);
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    pos ^= c;
    if (pos >= n_units_) break;
    const uint32_t u = units_[pos];
    if (label(u) != c) break;
    pos ^= offset(u);
    if (pos >= n_units_) break;
    if (has_leaf(u)) {
      best = i + 1;
      best_value = value(units_[pos]);
    }
  }
  if (best == 0) return 0;
  if (best_value >= replacements_.size()) return 0;  // corrupt entry: treat as no rule
  const char* r = replacements_.data() + best_value;
  *replacement = std::string_view(r, strnlen(r, replacements_.size() - best_value));
  return best;
}

std::pair<std::string_view, size_t> SpmNormalizer::normalize_prefix(std::string_view s) const {
  if (user_defined_ && !user_defined_->empty()) {
    int32_t v;
    const size_t n = user_defined_->longest(s, &v);
    if (n > 0) return {s.substr(0, n), n};
  }
  if (units_) {
    std::string_view rep;
    const size_t n = charsmap_prefix(s, &rep);
    if (n > 0) return {rep, n};
  }
  const size_t n = valid_utf8_len(s);
  if (n == 0) return {std::string_view("\xEF\xBF\xBD"), 1};  // malformed byte -> U+FFFD
  return {s.substr(0, n), n};
}

std::string SpmNormalizer::normalize(std::string_view input) const {
  std::string out;
  if (input.empty()) return out;
  if (remove_extra_whitespaces_) {
    while (!input.empty()) {
      const auto p = normalize_prefix(input);
      if (p.first != " ") break;
      input.remove_prefix(p.second);
    }
  }
  if (input.empty()) return out;
  out.reserve(input.size() * 3);
  auto add_ws = [&] {
    if (escape_whitespaces_) out.append(kSpace);
    else out += ' ';
  };
  if (!treat_whitespace_as_suffix_ && add_dummy_prefix_) add_ws();
  bool is_prev_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    const auto p = normalize_prefix(input);
    std::string_view sp = p.first;
    while (is_prev_space && !sp.empty() && sp.front() == ' ') sp.remove_prefix(1);
    if (!sp.empty()) {
      for (char c : sp) {
        if (escape_whitespaces_ && c == ' ') out.append(kSpace);
        else out += c;
      }
      is_prev_space = sp.back() == ' ';
    }
    input.remove_prefix(p.second);
    if (!remove_extra_whitespaces_) is_prev_space = false;
  }
  if (remove_extra_whitespaces_) {
    const std::string_view space = escape_whitespaces_ ? kSpace : std::string_view(" ");
    while (out.size() >= space.size() &&
           std::string_view(out).substr(out.size() - space.size()) == space)
      out.resize(out.size() - space.size());
  }
  if (treat_whitespace_as_suffix_ && add_dummy_prefix_) add_ws();
  return out;
}

}  // namespace gemkit
