#include "tokenizers/sentencepiece_model.h"

#include <cstring>

#include "core/error.h"
#include "core/file_io.h"

namespace gemkit {

namespace {

// Minimal protobuf wire-format reader: varints, 32/64-bit fixed, length-delimited.
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& where;
  const char* msg;  // message being parsed, for errors

  [[noreturn]] void bad(const std::string& field, const std::string& what) const {
    fail(where, std::string(msg) + "." + field + ": " + what);
  }
  bool done() const { return p >= end; }
  uint64_t varint(const char* field) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) bad(field, "truncated varint (file truncated?)");
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    bad(field, "varint longer than 10 bytes");
  }
  std::string_view bytes(const char* field) {
    const uint64_t n = varint(field);
    if (n > uint64_t(end - p))
      bad(field, "expected " + std::to_string(n) + " bytes, only " +
                     std::to_string(end - p) + " left (file truncated?)");
    std::string_view s(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    p += n;
    return s;
  }
  float fixed32f(const char* field) {
    if (end - p < 4) bad(field, "truncated float (file truncated?)");
    float f;
    std::memcpy(&f, p, 4);
    p += 4;
    return f;
  }
  void skip(uint32_t wire, const char* field) {
    switch (wire) {
      case 0: varint(field); break;
      case 1:
        if (end - p < 8) bad(field, "truncated fixed64");
        p += 8;
        break;
      case 2: bytes(field); break;
      case 5:
        if (end - p < 4) bad(field, "truncated fixed32");
        p += 4;
        break;
      default: bad(field, "unsupported wire type " + std::to_string(wire) + " (not a ModelProto?)");
    }
  }
  void expect_wire(uint32_t got, uint32_t want, const char* field) {
    if (got != want)
      bad(field, "expected wire type " + std::to_string(want) + ", got " + std::to_string(got));
  }
};

void parse_piece(std::string_view s, SentencePieceModel::Piece& out, const std::string& where) {
  Reader r{reinterpret_cast<const uint8_t*>(s.data()),
           reinterpret_cast<const uint8_t*>(s.data()) + s.size(), where, "pieces"};
  while (!r.done()) {
    const uint64_t tag = r.varint("tag");
    const uint32_t field = uint32_t(tag >> 3), wire = uint32_t(tag & 7);
    switch (field) {
      case 1: r.expect_wire(wire, 2, "piece"); out.piece = std::string(r.bytes("piece")); break;
      case 2: r.expect_wire(wire, 5, "score"); out.score = r.fixed32f("score"); break;
      case 3: r.expect_wire(wire, 0, "type"); out.type = int32_t(r.varint("type")); break;
      default: r.skip(wire, "unknown field");
    }
  }
}

void parse_trainer(std::string_view s, SentencePieceModel& m, const std::string& where) {
  Reader r{reinterpret_cast<const uint8_t*>(s.data()),
           reinterpret_cast<const uint8_t*>(s.data()) + s.size(), where, "trainer_spec"};
  auto i32 = [&](uint32_t wire, const char* name) {
    r.expect_wire(wire, 0, name);
    return int32_t(uint32_t(r.varint(name)));  // negative int32 are 10-byte varints
  };
  while (!r.done()) {
    const uint64_t tag = r.varint("tag");
    const uint32_t field = uint32_t(tag >> 3), wire = uint32_t(tag & 7);
    switch (field) {
      case 3: m.model_type = i32(wire, "model_type"); break;
      case 4: m.vocab_size = i32(wire, "vocab_size"); break;
      case 24: m.treat_whitespace_as_suffix = i32(wire, "treat_whitespace_as_suffix") != 0; break;
      case 35: m.byte_fallback = i32(wire, "byte_fallback") != 0; break;
      case 40: m.unk_id = i32(wire, "unk_id"); break;
      case 41: m.bos_id = i32(wire, "bos_id"); break;
      case 42: m.eos_id = i32(wire, "eos_id"); break;
      case 43: m.pad_id = i32(wire, "pad_id"); break;
      case 44: r.expect_wire(wire, 2, "unk_surface"); m.unk_surface = std::string(r.bytes("unk_surface")); break;
      case 45: r.expect_wire(wire, 2, "unk_piece"); m.unk_piece = std::string(r.bytes("unk_piece")); break;
      case 46: r.expect_wire(wire, 2, "bos_piece"); m.bos_piece = std::string(r.bytes("bos_piece")); break;
      case 47: r.expect_wire(wire, 2, "eos_piece"); m.eos_piece = std::string(r.bytes("eos_piece")); break;
      case 48: r.expect_wire(wire, 2, "pad_piece"); m.pad_piece = std::string(r.bytes("pad_piece")); break;
      default: r.skip(wire, "unknown field");
    }
  }
}

void parse_normalizer(std::string_view s, SentencePieceModel& m, const std::string& where) {
  Reader r{reinterpret_cast<const uint8_t*>(s.data()),
           reinterpret_cast<const uint8_t*>(s.data()) + s.size(), where, "normalizer_spec"};
  while (!r.done()) {
    const uint64_t tag = r.varint("tag");
    const uint32_t field = uint32_t(tag >> 3), wire = uint32_t(tag & 7);
    switch (field) {
      case 1: r.expect_wire(wire, 2, "name"); m.normalizer_name = std::string(r.bytes("name")); break;
      case 2:
        r.expect_wire(wire, 2, "precompiled_charsmap");
        m.precompiled_charsmap = std::string(r.bytes("precompiled_charsmap"));
        break;
      case 3: r.expect_wire(wire, 0, "add_dummy_prefix"); m.add_dummy_prefix = r.varint("add_dummy_prefix") != 0; break;
      case 4: r.expect_wire(wire, 0, "remove_extra_whitespaces"); m.remove_extra_whitespaces = r.varint("remove_extra_whitespaces") != 0; break;
      case 5: r.expect_wire(wire, 0, "escape_whitespaces"); m.escape_whitespaces = r.varint("escape_whitespaces") != 0; break;
      default: r.skip(wire, "unknown field");
    }
  }
}

}  // namespace

SentencePieceModel SentencePieceModel::parse(std::string_view bytes, const std::string& where) {
  SentencePieceModel m;
  Reader r{reinterpret_cast<const uint8_t*>(bytes.data()),
           reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size(), where, "ModelProto"};
  while (!r.done()) {
    const uint64_t tag = r.varint("tag");
    const uint32_t field = uint32_t(tag >> 3), wire = uint32_t(tag & 7);
    switch (field) {
      case 1: {
        r.expect_wire(wire, 2, "pieces");
        m.pieces.emplace_back();
        parse_piece(r.bytes("pieces"), m.pieces.back(), where);
        break;
      }
      case 2: r.expect_wire(wire, 2, "trainer_spec"); parse_trainer(r.bytes("trainer_spec"), m, where); break;
      case 3: r.expect_wire(wire, 2, "normalizer_spec"); parse_normalizer(r.bytes("normalizer_spec"), m, where); break;
      default: r.skip(wire, "unknown field");
    }
  }
  if (m.pieces.empty()) fail(where, "ModelProto.pieces: expected at least one piece, got 0 (not a SentencePiece model?)");
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const auto& p = m.pieces[i];
    if (p.piece.empty())
      fail(where, "ModelProto.pieces[" + std::to_string(i) + "].piece: expected a non-empty string");
    if (p.type < NORMAL || p.type > BYTE)
      fail(where, "ModelProto.pieces[" + std::to_string(i) + "].type: expected 1..6, got " +
                      std::to_string(p.type));
  }
  if (m.model_type != UNIGRAM && m.model_type != BPE && m.model_type != WORD && m.model_type != CHAR)
    fail(where, "trainer_spec.model_type: expected 1 (unigram), 2 (bpe), 3 (word) or 4 (char), got " +
                    std::to_string(m.model_type));
  return m;
}

SentencePieceModel SentencePieceModel::load(const std::string& path) {
  const std::string bytes = read_text_file(path);
  return parse(bytes, path);
}

}  // namespace gemkit
