// A byte-wise trie for longest-prefix matching: SentencePiece's user-defined symbols, unigram
// pieces, and added/special tokens. Children live in one hash table keyed by
// (node, byte), which keeps the structure compact for 100k+ entries and a walk costs one
// lookup per input byte.
#pragma once
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gemkit {

class ByteTrie {
 public:
  ByteTrie() : values_(1, -1) {}
  void insert(std::string_view key, int32_t value) {
    uint32_t node = 0;
    for (unsigned char c : key) {
      const uint64_t k = (uint64_t(node) << 8) | c;
      auto it = children_.find(k);
      if (it == children_.end()) {
        const uint32_t child = static_cast<uint32_t>(values_.size());
        values_.push_back(-1);
        children_.emplace(k, child);
        node = child;
      } else {
        node = it->second;
      }
    }
    values_[node] = value;
  }
  bool empty() const { return values_.size() == 1; }
  // Calls f(length, value) for every key that is a prefix of text, shortest first.
  template <typename F>
  void prefixes(std::string_view text, F&& f) const {
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      auto it = children_.find((uint64_t(node) << 8) | static_cast<unsigned char>(text[i]));
      if (it == children_.end()) return;
      node = it->second;
      if (values_[node] >= 0) f(i + 1, values_[node]);
    }
  }
  // Longest key that prefixes text: its length (0 if none) and value.
  size_t longest(std::string_view text, int32_t* value) const {
    size_t best = 0;
    prefixes(text, [&](size_t len, int32_t v) {
      best = len;
      *value = v;
    });
    return best;
  }

 private:
  std::vector<int32_t> values_;
  std::unordered_map<uint64_t, uint32_t> children_;
};

}  // namespace gemkit
