// GGUF tokenizer.ggml.* -> tokenizer.json + tokenizer_config.json. The special ids, add_bos /
// add_eos and the pre-tokenizer come from gemkit's own GGUF tokenizer (data/gguf_tokenizer.cpp),
// so the written files cannot drift from what gemkit does with the .gguf itself; the vocabulary,
// token types and merges are copied from the metadata.
//
// The vocabulary and merges are written by hand, in id / rank order, rather than through a json
// object: nlohmann's ordered_json finds keys by linear search (quadratic for 150k tokens) and
// the sorted std::map form would scramble the id order that Hugging Face files keep.
#include "import/tokenizer_files.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <unordered_set>

#include "core/error.h"
#include "core/file_io.h"
#include "data/bpe_tokenizer.h"
#include "data/tokenizer_loaders.h"
#include "model/gguf.h"

namespace gemkit {

using ojson = nlohmann::ordered_json;

namespace {

// llama.cpp's token types (llama_token_type).
constexpr int64_t kUnknown = 2, kControl = 3, kUserDefined = 4;

// A JSON string literal; GGUF strings are checked UTF-8 here because json refuses anything else.
std::string quoted(std::string_view s, const std::string& where) {
  try {
    return ojson(std::string(s)).dump();
  } catch (const nlohmann::json::exception&) {
    fail(where, "expected valid UTF-8 text, got invalid bytes");
  }
}

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
    quoted(tokens[i], path + ": tokenizer.ggml.tokens[" + std::to_string(i) + "]");
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
    vocab += quoted(tokens[i], path + ": tokenizer.ggml.tokens[" + std::to_string(i) + "]");
    vocab += ": " + std::to_string(i);
  }
  const GgufValue& merges = g.get("tokenizer.ggml.merges");
  std::string merge_list;
  merge_list.reserve(merges.size() * 16);
  for (size_t i = 0; i < merges.size(); ++i) {
    // Pairs, not "left right" strings: a token may itself contain a space.
    const std::string_view m = merges.string_at(i);
    const size_t sp = m.find(' ', 1);
    const std::string where = path + ": tokenizer.ggml.merges[" + std::to_string(i) + "]";
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

std::string tokenizer_config_json(const GgufFile& g, const SpecialTokens& sp, const std::vector<std::string>& tokens) {
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
  if (const GgufValue* t = g.find("tokenizer.chat_template")) cfg["chat_template"] = std::string(t->as_string());
  cfg["clean_up_tokenization_spaces"] = false;
  // llama.cpp keeps the training context as <arch>.context_length.
  const std::string arch = g.get_string("general.architecture", "");
  if (const GgufValue* n = arch.empty() ? nullptr : g.find(arch + ".context_length")) cfg["model_max_length"] = n->as_int();
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  return cfg.dump(2) + "\n";
}

}  // namespace

void write_hf_tokenizer_files(const GgufFile& g, const std::string& dir) {
  const GgufValue* model = g.find("tokenizer.ggml.model");
  if (!model) fail(g.path() + ": tokenizer.ggml.model", "missing; the file has no tokenizer");
  const std::string kind(model->as_string());
  if (kind == "llama")
    fail(g.path() + ": tokenizer.ggml.model",
         "\"llama\" (SentencePiece) is not supported by the import yet: expected \"gpt2\" (byte-level BPE)");
  if (kind != "gpt2")
    fail(g.path() + ": tokenizer.ggml.model", "expected \"gpt2\" (byte-level BPE), got \"" + kind + "\"");

  // Validates everything (pre-tokenizer name, merges against the vocabulary) before writing.
  std::unique_ptr<Tokenizer> loaded = load_gguf_tokenizer(g);
  const auto* tok = dynamic_cast<const ByteLevelBpeTokenizer*>(loaded.get());
  if (!tok) fail(g.path() + ": tokenizer.ggml.model", "expected a byte-level BPE tokenizer, got " + loaded->kind());

  const GgufValue& toks = g.get("tokenizer.ggml.tokens");
  std::vector<std::string> tokens;
  tokens.reserve(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) tokens.emplace_back(toks.string_at(i));
  std::vector<int64_t> types(tokens.size(), 1);
  if (const GgufValue* t = g.find("tokenizer.ggml.token_type"))
    for (size_t i = 0; i < tokens.size() && i < t->size(); ++i) types[i] = t->int_at(i);
  const bool ignore_merges = gguf_pre_ignores_merges(g.get_string("tokenizer.ggml.pre", ""));

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!is_directory(dir)) fail(dir, "cannot create the output folder: " + ec.message());
  const std::string json = tokenizer_json(g, *tok, tokens, types, ignore_merges);
  const std::string config = tokenizer_config_json(g, tok->special(), tokens);
  write_text_file_atomic(dir + "/tokenizer.json", json);
  write_text_file_atomic(dir + "/tokenizer_config.json", config);
}

}  // namespace gemkit
