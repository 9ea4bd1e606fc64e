// Pre-tokenizers of the byte-level BPE family, written by hand because their Hugging Face
// regexes need \p{L} / \p{N} and look-ahead, which std::regex lacks. Each splitter follows
// the regex's leftmost-first alternation semantics exactly (not llama.cpp's approximations):
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2:  as llama3 with \p{N} (single digits)
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace gemkit {

enum class PreTokenizer { Gpt2, Llama3, Qwen2 };

// Splits text into pieces (views into text) that cover it completely, in order.
std::vector<std::string_view> pretokenize(PreTokenizer kind, std::string_view text);

// Recognises a tokenizer.json Split / ByteLevel regex. Returns false for unknown patterns.
bool pretokenizer_from_regex(std::string_view regex, PreTokenizer* kind);
// GGUF tokenizer.ggml.pre names (llama.cpp's list) -> splitter. False when unsupported.
bool pretokenizer_from_gguf_name(std::string_view name, PreTokenizer* kind);
const char* pretokenizer_name(PreTokenizer kind);

}  // namespace gemkit
