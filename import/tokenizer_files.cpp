// GGUF tokenizer.ggml.* -> tokenizer.json (byte-level BPE, "gpt2") or tokenizer.model
// (SentencePiece, "llama"), plus tokenizer_config.json. The special ids, add_bos / add_eos and
// the pre-tokenizer come from gemkit's own GGUF tokenizer (tokenizers/gguf_tokenizer.cpp), so the
// written files cannot drift from what gemkit does with the .gguf itself; the vocabulary, token
// types, scores and merges are copied from the metadata.
//
// The vocabulary and merges are written by hand, in id / rank order, rather than through a json
// object: nlohmann's ordered_json finds keys by linear search (quadratic for 150k tokens) and
// the sorted std::map form would scramble the id order that Hugging Face files keep.
#include "import/tokenizer_files.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <memory>
#include <unordered_set>

#include "core/error.h"
#include "core/file_io.h"
#include "core/utf8.h"
#include "formats/gguf.h"
#include "formats/gguf_keys.h"
#include "tokenizers/bpe_tokenizer.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/tokenizer_loaders.h"

namespace gemkit {

using ojson = nlohmann::ordered_json;

namespace {

// llama.cpp's token types (llama_token_type).
constexpr int64_t kUnknown = 2, kControl = 3, kUserDefined = 4;

// A JSON string literal; GGUF strings are checked UTF-8 first because json refuses anything else.
std::string quoted(std::string_view s, const std::string& where) { return ojson(checked_utf8(s, where)).dump(); }

ojson byte_level(bool use_regex, bool trim_offsets, bool add_prefix_space) {
  return ojson{{"type", "ByteLevel"},
               {"add_prefix_space", add_prefix_space},
               {"trim_offsets", trim_offsets},
               {"use_regex", use_regex}};
}

// The pre_tokenizer whose splits equal gemkit's splitter of the same kind (pretokenizer.h).
ojson pre_tokenizer_json(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::Gpt2:
      return byte_level(true, true, false);
    case PreTokenizer::Smollm:
      return ojson{{"type", "Sequence"},
                   {"pretokenizers",
                    ojson::array({ojson{{"type", "Digits"}, {"individual_digits", true}},
                                  byte_level(true, true, false)})}};
    case PreTokenizer::Llama3:
    case PreTokenizer::Qwen2:
      return ojson{{"type", "Sequence"},
                   {"pretokenizers",
                    ojson::array({ojson{{"type", "Split"},
                                        {"pattern", {{"Regex", pretokenizer_regex(kind)}}},
                                        {"behavior", "Isolated"},
                                        {"invert", false}},
                                  byte_level(false, true, false)})}};
  }
  return nullptr;
}

// BOS / EOS around each sequence when the GGUF asks for them; otherwise ByteLevel (offsets only).
ojson post_processor_json(const SpecialTokens& sp, const std::vector<std::string>& tokens) {
  const bool bos = sp.add_bos && sp.bos >= 0, eos = sp.add_eos && sp.eos >= 0;
  if (!bos && !eos) return byte_level(true, false, true);
  auto special = [](const std::string& t, int type_id) {
    return ojson{{"SpecialToken", {{"id", t}, {"type_id", type_id}}}};
  };
  auto sequence = [](const char* id, int type_id) {
    return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  ojson single = ojson::array(), pair = ojson::array(), specials = ojson::object();
  for (int part = 0; part < 2; ++part) {
    ojson& out = part == 0 ? single : pair;
    for (int seq = 0; seq < (part == 0 ? 1 : 2); ++seq) {
      if (bos) out.push_back(special(tokens[sp.bos], seq));
      out.push_back(sequence(seq == 0 ? "A" : "B", seq));
      if (eos) out.push_back(special(tokens[sp.eos], seq));
    }
  }
  for (int32_t id : {bos ? sp.bos : -1, eos ? sp.eos : -1})
    if (id >= 0) specials[tokens[id]] = {{"id", tokens[id]}, {"ids", ojson::array({id})}, {"tokens", ojson::array({tokens[id]})}};
  return ojson{{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

std::string tokenizer_json(const GgufFile& g, const ByteLevelBpeTokenizer& tok, const std::vector<std::string>& tokens,
                           const std::vector<int64_t>& types, bool ignore_merges) {
  const std::string& path = g.path();
  // Control (and unknown) tokens are special added tokens, user-defined ones plain added tokens:
  // Hugging Face matches both in raw text, as transformers' own files do. A repeated token text
  // keeps its first id, as gemkit's tokenizers do.
  ojson added = ojson::array();
  std::unordered_set<std::string_view> seen_added;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const bool control = types[i] == kControl || types[i] == kUnknown;
    if ((!control && types[i] != kUserDefined) || tokens[i].empty() || !seen_added.insert(tokens[i]).second) continue;
    quoted(tokens[i], path + ": " + std::string(gguf_key::kTokenizerTokens) + "[" + std::to_string(i) + "]");
    added.push_back({{"id", i},
                     {"content", tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", control}});
  }

  std::string vocab;
  vocab.reserve(tokens.size() * 16);
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].empty() || !seen.insert(tokens[i]).second) continue;
    vocab += vocab.empty() ? "\n      " : ",\n      ";
    vocab += quoted(tokens[i], path + ": " + std::string(gguf_key::kTokenizerTokens) + "[" + std::to_string(i) + "]");
    vocab += ": " + std::to_string(i);
  }
  const GgufValue& merges = g.get(gguf_key::kTokenizerMerges);
  std::string merge_list;
  merge_list.reserve(merges.size() * 16);
  for (size_t i = 0; i < merges.size(); ++i) {
    // Pairs, not "left right" strings: a token may itself contain a space.
    const std::string_view m = merges.string_at(i);
    const size_t sp = m.find(' ', 1);
    const std::string where = path + ": " + std::string(gguf_key::kTokenizerMerges) + "[" + std::to_string(i) + "]";
    if (sp == std::string_view::npos) fail(where, "expected \"left right\", got \"" + std::string(m) + "\"");
    merge_list += merge_list.empty() ? "\n      [" : ",\n      [";
    merge_list += quoted(m.substr(0, sp), where) + ", " + quoted(m.substr(sp + 1), where) + "]";
  }

  ojson model_head = {{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"ignore_merges", ignore_merges}};
  std::string model = "{\n";
  for (const auto& [key, value] : model_head.items()) model += "    " + ojson(key).dump() + ": " + value.dump() + ",\n";
  model += "    \"vocab\": {" + vocab + "\n    },\n    \"merges\": [" + merge_list + "\n    ]\n  }";

  auto indent = [](const ojson& j) {
    std::string s = j.dump(2);
    std::string out;
    for (char c : s) {
      out += c;
      if (c == '\n') out += "  ";
    }
    return out;
  };
  std::string out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": " + indent(added) + ",\n";
  out += "  \"normalizer\": null,\n";
  out += "  \"pre_tokenizer\": " + indent(pre_tokenizer_json(tok.pretokenizer())) + ",\n";
  out += "  \"post_processor\": " + indent(post_processor_json(tok.special(), tokens)) + ",\n";
  out += "  \"decoder\": " + indent(byte_level(true, true, true)) + ",\n";
  out += "  \"model\": " + model + "\n}\n";
  return out;
}

std::string tokenizer_config_json(const GgufFile& g, const SpecialTokens& sp, const std::vector<std::string>& tokens,
                                  const char* tokenizer_class) {
  auto name = [&](int32_t id) -> ojson {
    if (id < 0 || static_cast<size_t>(id) >= tokens.size()) return nullptr;
    return tokens[id];
  };
  ojson cfg;
  cfg["add_bos_token"] = sp.add_bos;
  cfg["add_eos_token"] = sp.add_eos;
  cfg["bos_token"] = name(sp.bos);
  cfg["eos_token"] = name(sp.eos);
  cfg["unk_token"] = name(sp.unk);
  cfg["pad_token"] = name(sp.pad);
  if (const GgufValue* t = g.find(gguf_key::kTokenizerChatTemplate))
    cfg["chat_template"] = checked_utf8(t->as_string(), g.path() + ": " + gguf_key::kTokenizerChatTemplate);
  cfg["clean_up_tokenization_spaces"] = false;
  // llama.cpp keeps the training context as <arch>.context_length.
  const std::string arch = g.get_string(gguf_key::kArchitecture, "");
  if (const GgufValue* n = arch.empty() ? nullptr : g.find(gguf_key::arch_key(arch, gguf_key::kContextLength)))
    cfg["model_max_length"] = n->as_int();
  cfg["tokenizer_class"] = tokenizer_class;
  return cfg.dump(2) + "\n";
}

std::vector<std::string> gguf_tokens(const GgufFile& g) {
  const GgufValue& toks = g.get(gguf_key::kTokenizerTokens);
  std::vector<std::string> tokens;
  tokens.reserve(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) tokens.emplace_back(toks.string_at(i));
  return tokens;
}

std::vector<int64_t> gguf_token_types(const GgufFile& g, size_t n) {
  std::vector<int64_t> types(n, 1);
  if (const GgufValue* t = g.find(gguf_key::kTokenizerTokenType))
    for (size_t i = 0; i < n && i < t->size(); ++i) types[i] = t->int_at(i);
  return types;
}

// ---- SentencePiece: a ModelProto in protobuf wire format, with the field numbers that
// tokenizers/sentencepiece_model.cpp reads (sentencepiece_model.proto).

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_tag(std::string& out, uint32_t field, uint32_t wire) { put_varint(out, (uint64_t(field) << 3) | wire); }
// int32 fields: a negative value is sign-extended to 64 bits, as protobuf encodes it.
void put_int(std::string& out, uint32_t field, int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));
}
void put_bytes(std::string& out, uint32_t field, std::string_view s) {
  put_tag(out, field, 2);
  put_varint(out, s.size());
  out.append(s.data(), s.size());
}
void put_float(std::string& out, uint32_t field, float f) {
  put_tag(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);  // little-endian hosts only, as the GGUF reader
  out.append(b, 4);
}

// The pieces as gemkit's GGUF tokenizer sees them (spm_from_gguf): the declared unknown token is
// the one UNKNOWN piece, other UNKNOWN-typed tokens (Phi-3's placeholders) act as CONTROL.
std::string spm_model_proto(const GgufFile& g, const std::vector<std::string>& tokens,
                            const std::vector<int64_t>& types, const SpecialTokens& sp) {
  const std::string& path = g.path();
  std::vector<float> scores(tokens.size(), 0.0f);
  if (const GgufValue* s = g.find(gguf_key::kTokenizerScores))
    for (size_t i = 0; i < tokens.size() && i < s->size(); ++i) scores[i] = static_cast<float>(s->double_at(i));
  std::string out;
  bool byte_fallback = false;
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string where = path + ": " + std::string(gguf_key::kTokenizerTokens) + "[" + std::to_string(i) + "]";
    if (tokens[i].empty()) fail(where, "expected a non-empty piece (SentencePiece has no holes)");
    if (!seen.insert(tokens[i]).second) fail(where, "piece \"" + tokens[i] + "\" is defined twice");
    int64_t type = types[i] >= SentencePieceModel::NORMAL && types[i] <= SentencePieceModel::BYTE
                       ? types[i]
                       : int64_t(SentencePieceModel::NORMAL);
    if (static_cast<int32_t>(i) == sp.unk) type = SentencePieceModel::UNKNOWN;
    else if (type == SentencePieceModel::UNKNOWN) type = SentencePieceModel::CONTROL;
    byte_fallback = byte_fallback || type == SentencePieceModel::BYTE;
    std::string piece;
    put_bytes(piece, 1, tokens[i]);
    put_float(piece, 2, scores[i]);
    put_int(piece, 3, type);
    put_bytes(out, 1, piece);
  }
  auto text = [&](int32_t id, const char* fallback) { return id >= 0 ? tokens[id] : std::string(fallback); };
  std::string trainer;
  put_int(trainer, 3, SentencePieceModel::BPE);  // llama.cpp merges SentencePiece vocabularies by score
  put_int(trainer, 4, static_cast<int64_t>(tokens.size()));
  put_int(trainer, 35, byte_fallback ? 1 : 0);
  put_int(trainer, 40, sp.unk);
  put_int(trainer, 41, sp.bos);
  put_int(trainer, 42, sp.eos);
  put_int(trainer, 43, sp.pad);
  put_bytes(trainer, 45, text(sp.unk, "<unk>"));
  put_bytes(trainer, 46, text(sp.bos, "<s>"));
  put_bytes(trainer, 47, text(sp.eos, "</s>"));
  put_bytes(trainer, 48, text(sp.pad, "<pad>"));
  put_bytes(out, 2, trainer);
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, g.get_bool(gguf_key::kTokenizerAddSpacePrefix, true) ? 1 : 0);
  put_int(normalizer, 4, g.get_bool(gguf_key::kTokenizerRemoveExtraWhitespaces, false) ? 1 : 0);
  put_int(normalizer, 5, 1);
  put_bytes(out, 3, normalizer);
  return out;
}

void write_spm_files(const GgufFile& g, const std::string& dir) {
  std::unique_ptr<Tokenizer> direct = load_gguf_tokenizer(g);
  const SpecialTokens& sp = direct->special();
  const std::vector<std::string> tokens = gguf_tokens(g);
  const std::vector<int64_t> types = gguf_token_types(g, tokens.size());
  if (sp.unk < 0)
    fail(g.path() + ": " + gguf_key::kTokenizerUnknownId,
         "missing, and no token has the unknown type; a SentencePiece model needs one");
  // A tokenizer.model carries no add_bos / add_eos: its readers (gemkit's included) prepend
  // BOS when the BOS piece is a control piece and never append EOS. Refuse what it cannot say.
  auto control = [&](int32_t id) { return id >= 0 && id != sp.unk && types[id] == SentencePieceModel::CONTROL; };
  if (sp.add_bos != control(sp.bos))
    fail(g.path() + ": " + gguf_key::kTokenizerAddBos,
         std::string("expected ") + (control(sp.bos) ? "true" : "false") +
             " for a tokenizer.model (BOS is added exactly when the BOS piece is a control piece)");
  if (sp.add_eos) fail(g.path() + ": " + gguf_key::kTokenizerAddEos, "expected false for a tokenizer.model, got true");
  for (const auto& [id, key] : {std::pair{sp.bos, gguf_key::kTokenizerBosId}, {sp.eos, gguf_key::kTokenizerEosId},
                                {sp.pad, gguf_key::kTokenizerPaddingId}})
    if (id >= 0 && !control(id))
      fail(g.path() + ": " + key, "expected a control token (type 3), got token " + std::to_string(id) +
                                      " of type " + std::to_string(types[id]));
  const std::string model = spm_model_proto(g, tokens, types, sp);
  write_file_atomic(dir + "/tokenizer.model", [&](std::FILE* f) { write_all(f, model.data(), model.size(), dir + "/tokenizer.model"); });
  write_text_file_atomic(dir + "/tokenizer_config.json", tokenizer_config_json(g, sp, tokens, "LlamaTokenizer"));
}

void write_bpe_files(const GgufFile& g, const std::string& dir) {
  // Validates everything (pre-tokenizer name, merges against the vocabulary) before writing.
  std::unique_ptr<Tokenizer> loaded = load_gguf_tokenizer(g);
  const auto* tok = dynamic_cast<const ByteLevelBpeTokenizer*>(loaded.get());
  if (!tok) fail(g.path() + ": " + gguf_key::kTokenizerModel, "expected a byte-level BPE tokenizer, got " + loaded->kind());
  const std::vector<std::string> tokens = gguf_tokens(g);
  const std::vector<int64_t> types = gguf_token_types(g, tokens.size());
  const bool ignore_merges = gguf_pre_ignores_merges(g.get_string(gguf_key::kTokenizerPre, ""));
  const std::string json = tokenizer_json(g, *tok, tokens, types, ignore_merges);
  write_text_file_atomic(dir + "/tokenizer.json", json);
  write_text_file_atomic(dir + "/tokenizer_config.json",
                         tokenizer_config_json(g, tok->special(), tokens, "PreTrainedTokenizerFast"));
}

}  // namespace

void write_hf_tokenizer_files(const GgufFile& g, const std::string& dir) {
  const GgufValue* model = g.find(gguf_key::kTokenizerModel);
  if (!model) fail(g.path() + ": " + gguf_key::kTokenizerModel, "missing; the file has no tokenizer");
  const std::string kind(model->as_string());
  if (kind != "gpt2" && kind != "llama")
    fail(g.path() + ": " + gguf_key::kTokenizerModel,
         "expected \"gpt2\" (byte-level BPE) or \"llama\" (SentencePiece), got \"" + kind + "\"");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!is_directory(dir)) fail(dir, "cannot create the output folder: " + ec.message());
  if (kind == "gpt2") write_bpe_files(g, dir);
  else write_spm_files(g, dir);
}

}  // namespace gemkit
