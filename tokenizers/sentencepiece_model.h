// SentencePiece's tokenizer.model: a serialized sentencepiece.ModelProto (protobuf, proto2).
// We decode the wire format ourselves instead of linking libsentencepiece, whose bundled
// protobuf clashes with libtorch's (docs/design/toolchain.md). Only the fields that affect encoding and
// decoding are kept; unknown fields are skipped as protobuf requires.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gemkit {

struct SentencePieceModel {
  // ModelProto.SentencePiece.Type
  enum PieceType : int32_t { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4,
                             UNUSED = 5, BYTE = 6 };
  // TrainerSpec.ModelType
  enum ModelType : int32_t { UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4 };

  struct Piece {
    std::string piece;
    float score = 0.0f;
    int32_t type = NORMAL;
  };
  std::vector<Piece> pieces;

  // TrainerSpec (defaults as in sentencepiece_model.proto).
  int32_t model_type = UNIGRAM;
  int32_t vocab_size = 8000;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  std::string unk_surface = " \xE2\x81\x87 ";

  // NormalizerSpec.
  std::string normalizer_name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;

  // Parses a serialized ModelProto; `where` names the source in errors.
  static SentencePieceModel parse(std::string_view bytes, const std::string& where);
  static SentencePieceModel load(const std::string& path);
};

}  // namespace gemkit
