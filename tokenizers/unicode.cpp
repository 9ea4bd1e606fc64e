#include "tokenizers/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <array>

#include "core/error.h"

namespace gemkit::unicode {

uint32_t decode_utf8(std::string_view s, size_t& i) {
  const auto c0 = static_cast<unsigned char>(s[i]);
  if (c0 < 0x80) {
    ++i;
    return c0;
  }
  const size_t n = s.size() - i;
  auto trail = [&](size_t k) { return (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80; };
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i + k])); };
  if ((c0 & 0xE0) == 0xC0 && n >= 2 && trail(1)) {
    uint32_t cp = ((c0 & 0x1F) << 6) | (byte(1) & 0x3F);
    if (cp >= 0x80) {
      i += 2;
      return cp;
    }
  } else if ((c0 & 0xF0) == 0xE0 && n >= 3 && trail(1) && trail(2)) {
    uint32_t cp = ((c0 & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) {
      i += 3;
      return cp;
    }
  } else if ((c0 & 0xF8) == 0xF0 && n >= 4 && trail(1) && trail(2) && trail(3)) {
    uint32_t cp = ((c0 & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) |
                  (byte(3) & 0x3F);
    if (cp >= 0x10000 && cp <= 0x10FFFF) {
      i += 4;
      return cp;
    }
  }
  ++i;
  return 0xFFFD;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_utf8(uint32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

std::vector<uint32_t> to_codepoints(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(decode_utf8(s, i));
  return out;
}

// ASCII is by far the most common input: answer it from a table instead of calling ICU.
namespace {
enum : uint8_t { kL = 1, kN = 2, kP = 4, kS = 8, kW = 16, kC = 32 };
struct AsciiTable {
  std::array<uint8_t, 128> f{};
  AsciiTable() {
    for (int c = 0; c < 128; ++c) {
      uint8_t v = 0;
      const int8_t t = u_charType(c);
      if (t >= U_UPPERCASE_LETTER && t <= U_OTHER_LETTER) v |= kL;
      if (t >= U_DECIMAL_DIGIT_NUMBER && t <= U_OTHER_NUMBER) v |= kN;
      if ((t >= U_DASH_PUNCTUATION && t <= U_OTHER_PUNCTUATION) ||
          t == U_INITIAL_PUNCTUATION || t == U_FINAL_PUNCTUATION)
        v |= kP;
      if (t >= U_MATH_SYMBOL && t <= U_OTHER_SYMBOL) v |= kS;
      if (u_hasBinaryProperty(c, UCHAR_WHITE_SPACE)) v |= kW;
      f[c] = v;
    }
  }
};
const AsciiTable& ascii() {
  static const AsciiTable t;
  return t;
}
}  // namespace

bool is_letter(uint32_t cp) {
  if (cp < 128) return ascii().f[cp] & kL;
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t >= U_UPPERCASE_LETTER && t <= U_OTHER_LETTER;
}

bool is_number(uint32_t cp) {
  if (cp < 128) return ascii().f[cp] & kN;
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t >= U_DECIMAL_DIGIT_NUMBER && t <= U_OTHER_NUMBER;
}

bool is_mark(uint32_t cp) {
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK;
}

bool is_nonspacing_mark(uint32_t cp) {
  return u_charType(static_cast<UChar32>(cp)) == U_NON_SPACING_MARK;
}

bool is_punctuation(uint32_t cp) {
  if (cp < 128) return ascii().f[cp] & kP;
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return (t >= U_DASH_PUNCTUATION && t <= U_OTHER_PUNCTUATION) || t == U_INITIAL_PUNCTUATION ||
         t == U_FINAL_PUNCTUATION || t == U_CONNECTOR_PUNCTUATION;
}

bool is_symbol(uint32_t cp) {
  if (cp < 128) return ascii().f[cp] & kS;
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t >= U_MATH_SYMBOL && t <= U_OTHER_SYMBOL;
}

bool is_whitespace(uint32_t cp) {
  if (cp < 128) return ascii().f[cp] & kW;
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE);
}

bool is_control_or_format(uint32_t cp) {
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_PRIVATE_USE_CHAR ||
         t == U_UNASSIGNED || t == U_SURROGATE;
}

uint32_t to_lower(uint32_t cp) {
  if (cp < 128) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cp)));
}

std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFDInstance(err);
  if (U_FAILURE(err)) fail("ICU", std::string("NFD normalizer unavailable: ") + u_errorName(err));
  icu::UnicodeString src;
  for (uint32_t cp : cps) src.append(static_cast<UChar32>(cp));
  icu::UnicodeString dst = n->normalize(src, err);
  if (U_FAILURE(err)) fail("ICU", std::string("NFD failed: ") + u_errorName(err));
  std::vector<uint32_t> out;
  out.reserve(cps.size() + 8);
  for (int32_t i = 0; i < dst.length();) {
    const UChar32 c = dst.char32At(i);
    out.push_back(static_cast<uint32_t>(c));
    i += U16_LENGTH(c);
  }
  return out;
}

namespace {
struct ByteTable {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> from_cp{};  // mapped code points are all < 324
  ByteTable() {
    from_cp.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                             (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? b : 256 + n++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteTable& bytes() {
  static const ByteTable t;
  return t;
}
}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return bytes().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) { return cp < 324 ? bytes().from_cp[cp] : -1; }

}  // namespace gemkit::unicode
