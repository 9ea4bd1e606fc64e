#include "tokenizers/pretokenizer.h"

#include "tokenizers/unicode.h"

namespace gemkit {

namespace {

struct Cps {
  std::vector<uint32_t> cp;
  std::vector<size_t> off;  // byte offset of each code point; off[n] = text size
  explicit Cps(std::string_view s) {
    cp.reserve(s.size());
    off.reserve(s.size() + 1);
    for (size_t i = 0; i < s.size();) {
      off.push_back(i);
      cp.push_back(unicode::decode_utf8(s, i));
    }
    off.push_back(s.size());
  }
};

enum Cls : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

inline Cls classify(uint32_t c) {
  if (unicode::is_letter(c)) return kLetter;
  if (unicode::is_number(c)) return kNumber;
  if (unicode::is_whitespace(c)) return kSpace;
  return kOther;
}

inline uint32_t lower_ascii(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Length of a contraction match at i ('s 't 're 've 'm 'll 'd) before n, 0 if none.
size_t contraction(const std::vector<uint32_t>& cp, size_t i, size_t n, bool ignore_case) {
  if (cp[i] != '\'' || i + 1 >= n) return 0;
  auto f = [&](uint32_t c) { return ignore_case ? lower_ascii(c) : c; };
  const uint32_t a = f(cp[i + 1]);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < n) {
    const uint32_t b = f(cp[i + 2]);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

// GPT-2's regex over code points [begin, end), appending each piece's end to `ends`. The
// range's end counts as the end of the text (the smollm family runs the regex per piece).
void split_gpt2(const std::vector<uint32_t>& cp, const std::vector<Cls>& cls, size_t begin, size_t end,
                std::vector<size_t>& ends) {
  const size_t n = end;
  size_t i = begin;
  while (i < n) {
    if (size_t c = contraction(cp, i, n, false)) {
      i += c;
      ends.push_back(i);
      continue;
    }
    // ' ?X+' for X in letters, numbers, other.
    const size_t s = (cp[i] == ' ' && i + 1 < n) ? i + 1 : i;
    const Cls k = cls[s];
    if (k != kSpace) {
      if (s == i + 1 || cp[i] != ' ') {
        size_t j = s;
        while (j < n && cls[j] == k) ++j;
        i = j;
        ends.push_back(i);
        continue;
      }
    }
    // Whitespace run: \s+(?!\S) leaves the last space for the next word; else \s+.
    size_t j = i;
    while (j < n && cls[j] == kSpace) ++j;
    if (j == i) {  // unreachable: every code point has a class
      ends.push_back(++i);
      continue;
    }
    i = (j < n && j - i > 1) ? j - 1 : j;
    ends.push_back(i);
  }
}

// smollm / starcoder: Hugging Face's Sequence[Digits(individual_digits), ByteLevel(use_regex)].
// Every \p{N} code point is a piece of its own (Rust's char::is_numeric is \p{N}); GPT-2's
// regex then runs within each stretch between digits, so " 12" gives " ", "1", "2".
std::vector<size_t> split_gpt2_digits(const std::vector<uint32_t>& cp, const std::vector<Cls>& cls) {
  std::vector<size_t> ends;
  const size_t n = cp.size();
  size_t i = 0;
  while (i < n) {
    if (cls[i] == kNumber) {
      ends.push_back(++i);
      continue;
    }
    size_t j = i;
    while (j < n && cls[j] != kNumber) ++j;
    split_gpt2(cp, cls, i, j, ends);
    i = j;
  }
  return ends;
}

std::vector<size_t> split_llama3(const std::vector<uint32_t>& cp, const std::vector<Cls>& cls,
                                 size_t max_digits) {
  std::vector<size_t> ends;
  const size_t n = cp.size();
  size_t i = 0;
  auto is_nl = [&](size_t j) { return cp[j] == '\r' || cp[j] == '\n'; };
  while (i < n) {
    if (size_t c = contraction(cp, i, n, true)) {
      i += c;
      ends.push_back(i);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (cls[i] == kLetter || (!is_nl(i) && cls[i] != kNumber && i + 1 < n && cls[i + 1] == kLetter)) {
      size_t j = i + 1;
      while (j < n && cls[j] == kLetter) ++j;
      i = j;
      ends.push_back(i);
      continue;
    }
    // \p{N}{1,max}
    if (cls[i] == kNumber) {
      size_t j = i;
      while (j < n && cls[j] == kNumber && j - i < max_digits) ++j;
      i = j;
      ends.push_back(i);
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    {
      const size_t s = (cp[i] == ' ' && i + 1 < n && cls[i + 1] == kOther) ? i + 1 : i;
      if (cls[s] == kOther) {
        size_t j = s;
        while (j < n && cls[j] == kOther) ++j;
        while (j < n && is_nl(j)) ++j;
        i = j;
        ends.push_back(i);
        continue;
      }
    }
    // Whitespace: \s*[\r\n]+ ends after the run's last newline; then \s+(?!\S); then \s+.
    size_t j = i, last_nl = 0;
    while (j < n && cls[j] == kSpace) {
      if (is_nl(j)) last_nl = j + 1;
      ++j;
    }
    if (last_nl > 0) {
      i = last_nl;
    } else if (j == i) {  // unreachable
      ++i;
    } else {
      i = (j < n && j - i > 1) ? j - 1 : j;
    }
    ends.push_back(i);
  }
  return ends;
}

}  // namespace

std::vector<std::string_view> pretokenize(PreTokenizer kind, std::string_view text) {
  std::vector<std::string_view> out;
  if (text.empty()) return out;
  Cps c(text);
  std::vector<Cls> cls(c.cp.size());
  for (size_t i = 0; i < c.cp.size(); ++i) cls[i] = classify(c.cp[i]);
  std::vector<size_t> ends;
  switch (kind) {
    case PreTokenizer::Gpt2: split_gpt2(c.cp, cls, 0, c.cp.size(), ends); break;
    case PreTokenizer::Smollm: ends = split_gpt2_digits(c.cp, cls); break;
    case PreTokenizer::Llama3: ends = split_llama3(c.cp, cls, 3); break;
    case PreTokenizer::Qwen2: ends = split_llama3(c.cp, cls, 1); break;
  }
  size_t start = 0;
  out.reserve(ends.size());
  for (size_t e : ends) {
    out.push_back(text.substr(c.off[start], c.off[e] - c.off[start]));
    start = e;
  }
  return out;
}

const char* pretokenizer_regex(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::Gpt2:
    case PreTokenizer::Smollm:
      return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    case PreTokenizer::Llama3:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    case PreTokenizer::Qwen2:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  }
  return "";
}

bool pretokenizer_from_regex(std::string_view re, PreTokenizer* kind) {
  // Smollm is not a Split regex (it is Digits + ByteLevel), so it is never matched here.
  for (PreTokenizer k : {PreTokenizer::Gpt2, PreTokenizer::Llama3, PreTokenizer::Qwen2})
    if (re == pretokenizer_regex(k)) {
      *kind = k;
      return true;
    }
  return false;
}

bool pretokenizer_from_gguf_name(std::string_view name, PreTokenizer* kind) {
  // Names from llama.cpp's llama-vocab.cpp that use exactly one of our four splitters.
  static const std::string_view gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat",
                                          "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
                                          "modern-bert", "mpt", "olmo", "jais", "trillion",
                                          "granite-docling", "exaone4", "roberta-bpe",
                                          "jina-v1-en", "jina-v2-code"};
  // llama.cpp's regex pair {"\p{N}", gpt2}: single digits, then GPT-2's regex between them.
  static const std::string_view smollm[] = {"smollm", "starcoder", "refact", "command-r",
                                            "codeshell", "exaone", "minerva-7b"};
  static const std::string_view llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3",
                                            "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                                            "jina-v5-nano", "dbrx", "smaug-bpe", "chatglm-bpe",
                                            "glm4"};
  static const std::string_view qwen2[] = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2",
                                           "megrez", "stablelm2", "hunyuan", "solar-open",
                                           "grok-2"};
  for (auto s : gpt2) if (name == s) { *kind = PreTokenizer::Gpt2; return true; }
  for (auto s : smollm) if (name == s) { *kind = PreTokenizer::Smollm; return true; }
  for (auto s : llama3) if (name == s) { *kind = PreTokenizer::Llama3; return true; }
  for (auto s : qwen2) if (name == s) { *kind = PreTokenizer::Qwen2; return true; }
  return false;
}

bool gguf_pre_ignores_merges(std::string_view name) {
  // llama.cpp sets ignore_merges for its LLAMA3 pre-type only; these llama3-regex names map
  // to other pre-types that merge every piece.
  PreTokenizer kind;
  return pretokenizer_from_gguf_name(name, &kind) && kind == PreTokenizer::Llama3 && name != "dbrx" &&
         name != "smaug-bpe" && name != "glm4" && name != "chatglm-bpe";
}

const char* pretokenizer_name(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::Gpt2: return "gpt2";
    case PreTokenizer::Smollm: return "smollm";
    case PreTokenizer::Llama3: return "llama3";
    case PreTokenizer::Qwen2: return "qwen2";
  }
  return "?";
}

const char* pretokenizer_gguf_name(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::Gpt2: return "gpt-2";
    case PreTokenizer::Smollm: return "smollm";
    case PreTokenizer::Llama3: return "llama-bpe";
    case PreTokenizer::Qwen2: return "qwen2";
  }
  return "gpt-2";
}

}  // namespace gemkit
