// Pre-tokenizers of the byte-level BPE family, written by hand because their Hugging Face
// regexes need \p{L} / \p{N} and look-ahead, which std::regex lacks. Each splitter follows
// the regex's leftmost-first alternation semantics exactly (not llama.cpp's approximations):
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2:  as llama3 with \p{N} (single digits)
//   smollm: every \p{N} alone, then gpt2 between them (Hugging Face Sequence[Digits
//           (individual_digits), ByteLevel(use_regex)]; llama.cpp's smollm and starcoder)
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace gemkit {

enum class PreTokenizer { Gpt2, Smollm, Llama3, Qwen2 };

// Splits text into pieces (views into text) that cover it completely, in order.
std::vector<std::string_view> pretokenize(PreTokenizer kind, std::string_view text);

// The Hugging Face regex of a splitter, as tokenizer.json spells it (Smollm: the GPT-2 regex
// that its ByteLevel step applies between the digits).
const char* pretokenizer_regex(PreTokenizer kind);
// Recognises a tokenizer.json Split / ByteLevel regex. Returns false for unknown patterns.
bool pretokenizer_from_regex(std::string_view regex, PreTokenizer* kind);
// GGUF tokenizer.ggml.pre names (llama.cpp's list) -> splitter. False when unsupported.
bool pretokenizer_from_gguf_name(std::string_view name, PreTokenizer* kind);
// llama.cpp's ignore_merges (a piece that is itself a token is not merged): the Llama 3 names.
bool gguf_pre_ignores_merges(std::string_view name);
const char* pretokenizer_name(PreTokenizer kind);
// The tokenizer.ggml.pre name an exporter writes for a splitter.
const char* pretokenizer_gguf_name(PreTokenizer kind);

}  // namespace gemkit
