// UTF-8 and Unicode-property helpers shared by the tokenizers. Character classes come from
// ICU (u_charType, White_Space) because the pre-tokenizer regexes of GPT-2 / Llama 3 / Qwen2
// and BERT's normalizer are defined over Unicode general categories, which std::regex lacks.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gemkit::unicode {

// Decodes one code point at s[i]; invalid or truncated sequences yield 0xFFFD and consume
// one byte (so every byte of the input is accounted for exactly once).
uint32_t decode_utf8(std::string_view s, size_t& i);
// Length of the UTF-8 sequence that starts with byte c, from the lead byte alone (1 for
// continuation / invalid bytes), as llama.cpp and sentencepiece's OneCharLen do.
inline size_t utf8_len(unsigned char c) {
  static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[c >> 4];
}
void append_utf8(std::string& out, uint32_t cp);
std::string to_utf8(uint32_t cp);
std::vector<uint32_t> to_codepoints(std::string_view s);

bool is_letter(uint32_t cp);       // \p{L}
bool is_number(uint32_t cp);       // \p{N}
bool is_mark(uint32_t cp);         // \p{M}
bool is_nonspacing_mark(uint32_t cp);  // Mn
bool is_punctuation(uint32_t cp);  // \p{P}
bool is_symbol(uint32_t cp);       // \p{S}
bool is_whitespace(uint32_t cp);   // \s: the White_Space property
bool is_control_or_format(uint32_t cp);  // Cc, Cf, Co, Cn, Cs (BERT's "control")
uint32_t to_lower(uint32_t cp);    // simple case mapping
// NFD of a code point sequence.
std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps);

// GPT-2's reversible byte <-> printable code point table (bytes_to_unicode).
uint32_t byte_to_codepoint(uint8_t b);
// -1 when cp is not one of the 256 mapped code points.
int codepoint_to_byte(uint32_t cp);

}  // namespace gemkit::unicode
