// Strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF),
// for text that gemkit writes into formats that require UTF-8 (TOML, JSON) and must read back.
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

#include "core/error.h"

namespace gemkit {

// The offset of the first byte that does not start a valid UTF-8 sequence, or npos when `s` is
// valid throughout.
inline size_t invalid_utf8_offset(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) n = 1;
    else if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) n = 3;
    else if (c == 0xED) n = 3, hi = 0x9F;  // U+D800..U+DFFF are surrogates
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;  // nothing above U+10FFFF
    else return i;
    if (i + n > s.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return i;
    }
    i += n;
  }
  return std::string_view::npos;
}

// `s` as a string, or gemkit::Error "WHERE: expected valid UTF-8 text, byte 0xA4 at offset 16 is
// not": for text read from a binary file (a GGUF string) on its way into JSON, whose writer would
// otherwise throw its own exception naming neither the file nor the field.
inline std::string checked_utf8(std::string_view s, const std::string& where) {
  const size_t bad = invalid_utf8_offset(s);
  if (bad == std::string_view::npos) return std::string(s);
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(s[bad])));
  fail(where, std::string("expected valid UTF-8 text, byte ") + byte + " at offset " + std::to_string(bad) + " is not");
}

}  // namespace gemkit
