#include "export/gguf_export.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "formats/gguf_keys.h"
#include "formats/gguf_writer.h"
#include "formats/llama_tensor_names.h"
#include "model/gguf_model.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_loaders.h"

namespace gemkit {

namespace {

void check_exportable(const ModelConfig& c) {
  const std::string where = "model config (" + c.architecture + ")";
  if (c.model_type != "llama") fail(where, "model_type: gguf export supports \"llama\" decoders, got \"" + c.model_type + "\"");
  if (c.attention_bias) fail(where, "attention_bias: the llama GGUF architecture has no q/k/v biases");
  if (c.head != Head::CausalLM) fail(where, "head: gguf export writes causal language models");
  if (c.rope_scaling.type != "default")
    fail(where, "rope_scaling: \"" + c.rope_scaling.type + "\" is not exported yet (only the default RoPE)");
  if (c.hidden_act != "silu") fail(where, "hidden_act: expected silu, got " + c.hidden_act);
  if (c.head_dim() * c.num_attention_heads != c.hidden_size)
    fail(where, "head_dim: llama.cpp derives it as hidden_size / heads; an explicit head_dim that differs is not supported");
}

// Byte-level BPE tokenizer.json -> tokenizer.ggml.model "gpt2": tokens in id order (holes as
// unused "[PAD<id>]" entries, as llama.cpp's converter writes them), merges "left right",
// added tokens control (special) or user-defined, and llama.cpp's pre-tokenizer name.
void write_bpe_tokenizer(GgufWriter& w, const std::string& path, int64_t vocab_size) {
  const ByteLevelBpeConfig c = load_byte_level_bpe_config(path);
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), 5);  // unused until filled
  for (size_t i = 0; i < c.vocab.size() && i < tokens.size(); ++i)
    if (!c.vocab[i].empty()) tokens[i] = c.vocab[i], types[i] = 1;
  for (const AddedToken& a : c.added) {
    if (a.id < 0 || a.id >= vocab_size)
      fail(path, "added token \"" + a.content + "\" has id " + std::to_string(a.id) + ", outside the model's vocab_size " +
                     std::to_string(vocab_size));
    tokens[size_t(a.id)] = a.content;
    types[size_t(a.id)] = a.special ? 3 : 4;
  }
  if (c.vocab.size() > tokens.size())
    fail(path, "has " + std::to_string(c.vocab.size()) + " tokens, the model's vocab_size is " + std::to_string(vocab_size));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i].empty()) tokens[i] = "[PAD" + std::to_string(i) + "]";
  std::vector<std::string> merges;
  merges.reserve(c.merges.size());
  for (const auto& [left, right] : c.merges) merges.push_back(left + " " + right);
  const char* pre = pretokenizer_gguf_name(c.pretokenizer);  // one name per splitter (tokenizers/pretokenizer.h)
  w.set_string(gguf_key::kTokenizerModel, "gpt2");
  w.set_string(gguf_key::kTokenizerPre, pre);
  w.set_strings(gguf_key::kTokenizerTokens, tokens);
  w.set_i32s(gguf_key::kTokenizerTokenType, types);
  w.set_strings(gguf_key::kTokenizerMerges, merges);
  if (c.special.bos >= 0) w.set_u32(gguf_key::kTokenizerBosId, c.special.bos);
  if (c.special.eos >= 0) w.set_u32(gguf_key::kTokenizerEosId, c.special.eos);
  if (c.special.unk >= 0) w.set_u32(gguf_key::kTokenizerUnknownId, c.special.unk);
  if (c.special.pad >= 0) w.set_u32(gguf_key::kTokenizerPaddingId, c.special.pad);
  w.set_bool(gguf_key::kTokenizerAddBos, c.special.add_bos);
  w.set_bool(gguf_key::kTokenizerAddEos, c.special.add_eos);
}

void write_spm_tokenizer(GgufWriter& w, const std::string& folder, int64_t vocab_size) {
  const std::string path = (std::filesystem::path(folder) / kSentencePieceModelFile).string();
  const SentencePieceModel spm = SentencePieceModel::load(path);
  if (static_cast<int64_t>(spm.pieces.size()) != vocab_size)
    fail(path, "has " + std::to_string(spm.pieces.size()) + " pieces, the model's vocab_size is " + std::to_string(vocab_size));
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const auto& p : spm.pieces) {
    tokens.push_back(p.piece);
    scores.push_back(p.score);
    types.push_back(p.type);  // SentencePiece's piece types are GGUF's token types (1..6)
  }
  w.set_string(gguf_key::kTokenizerModel, "llama");
  w.set_string(gguf_key::kTokenizerPre, "default");
  w.set_strings(gguf_key::kTokenizerTokens, tokens);
  w.set_f32s(gguf_key::kTokenizerScores, scores);
  w.set_i32s(gguf_key::kTokenizerTokenType, types);
  if (spm.bos_id >= 0) w.set_u32(gguf_key::kTokenizerBosId, spm.bos_id);
  if (spm.eos_id >= 0) w.set_u32(gguf_key::kTokenizerEosId, spm.eos_id);
  if (spm.unk_id >= 0) w.set_u32(gguf_key::kTokenizerUnknownId, spm.unk_id);
  if (spm.pad_id >= 0) w.set_u32(gguf_key::kTokenizerPaddingId, spm.pad_id);
  w.set_bool(gguf_key::kTokenizerAddBos, spm.bos_id >= 0);
  w.set_bool(gguf_key::kTokenizerAddEos, false);
}

// llama.cpp's llama_ftype for general.file_type: the type most weight bytes are stored in.
uint32_t file_type_of(const std::vector<GgufExportedTensor>& tensors) {
  std::map<QuantType, uint64_t> elems;
  for (const auto& t : tensors)
    if (t.shape.size() == 2) elems[t.type] += static_cast<uint64_t>(t.shape[0] * t.shape[1]);
  QuantType most = QuantType::F32;
  uint64_t best = 0;
  for (const auto& [type, n] : elems)
    if (n > best) best = n, most = type;
  switch (most) {
    case QuantType::F32: return kLlamaFileTypeF32;
    case QuantType::F16: return kLlamaFileTypeF16;
    case QuantType::Q4_0: return kLlamaFileTypeQ4_0;
    case QuantType::Q8_0: return kLlamaFileTypeQ8_0;
  }
  return kLlamaFileTypeF32;
}

}  // namespace

GgufExportReport export_gguf(const Transformer& model, const GgufExportOptions& options, const std::string& path) {
  const ModelConfig& c = model->config();
  check_exportable(c);
  if (!options.overwrite && std::filesystem::exists(path)) fail(path, "exists; pass --force to replace it");

  GgufWriter w;
  GgufExportReport report;
  bool quantized = false;
  torch::NoGradGuard no_grad;
  for (const auto& item : model->named_parameters()) {
    const std::string& hf = item.key();
    const std::string gg = gguf_name_of_hf(hf);
    if (gg.empty()) fail(hf, "has no llama GGUF tensor name (not a plain llama parameter)");
    torch::Tensor t = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    if (is_gguf_block_tensor(gg, kGgufAttnQ)) t = permute_rope_rows(t, c.num_attention_heads);
    if (is_gguf_block_tensor(gg, kGgufAttnK)) t = permute_rope_rows(t, c.num_key_value_heads);
    const std::vector<int64_t> shape = t.sizes().vec();
    const QuantType type = options.policy.type_for(hf, shape);
    quantized = quantized || is_block_quantized(type);
    const int64_t n = shape.back(), rows = t.numel() / n;
    const size_t row_bytes = quant_row_bytes(type, n);
    std::vector<uint8_t> data(row_bytes * rows);
    const float* src = t.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, src + r * n, n, data.data() + r * row_bytes);
    report.tensors.push_back({hf, gg, shape, type, data.size()});
    report.f32_bytes += t.numel() * 4;
    w.add_tensor(gg, shape, type, std::move(data));
  }

  for (const auto& [name, value, type] : options.extra_tensors) {
    if (type != QuantType::F32 && type != QuantType::F16 && type != QuantType::Q8_0)
      fail(name, "extra tensors are stored as f32, f16 or q8_0");
    torch::Tensor t = value.detach().to(torch::kCPU, torch::kFloat).contiguous();
    if (t.dim() == 0) t = t.reshape({1});
    const std::vector<int64_t> shape = t.sizes().vec();
    const int64_t n = shape.back(), rows = t.numel() / n;
    if (type == QuantType::Q8_0 && n % 32 != 0) fail(name, "q8_0 needs rows of a multiple of 32 values, got " + std::to_string(n));
    const size_t row_bytes = quant_row_bytes(type, n);
    std::vector<uint8_t> data(size_t(rows) * row_bytes);
    const float* src = t.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, src + r * n, n, data.data() + r * row_bytes);
    report.tensors.push_back({"", name, shape, type, data.size()});
    report.f32_bytes += t.numel() * 4;
    w.add_tensor(name, shape, type, std::move(data));
  }

  const std::string& arch = options.architecture;
  using gguf_key::arch_key;
  w.set_string(gguf_key::kArchitecture, arch);
  w.set_string(gguf_key::kName, options.name.empty() ? "gemkit model" : options.name);
  w.set_u32(gguf_key::kFileType, file_type_of(report.tensors));
  if (quantized) w.set_u32(gguf_key::kQuantizationVersion, kGgmlQuantizationVersion);
  w.set_u32(arch_key(arch, gguf_key::kContextLength), c.max_position_embeddings);
  w.set_u32(arch_key(arch, gguf_key::kEmbeddingLength), c.hidden_size);
  w.set_u32(arch_key(arch, gguf_key::kBlockCount), c.num_hidden_layers);
  w.set_u32(arch_key(arch, gguf_key::kFeedForwardLength), c.intermediate_size);
  w.set_u32(arch_key(arch, gguf_key::kHeadCount), c.num_attention_heads);
  w.set_u32(arch_key(arch, gguf_key::kHeadCountKv), c.num_key_value_heads);
  w.set_u32(arch_key(arch, gguf_key::kRopeDimensionCount), c.head_dim());
  w.set_f32(arch_key(arch, gguf_key::kRopeFreqBase), static_cast<float>(c.rope_theta));
  w.set_f32(arch_key(arch, gguf_key::kRmsEpsilon), static_cast<float>(c.rms_norm_eps));
  w.set_u32(arch_key(arch, gguf_key::kVocabSize), c.vocab_size);
  // SentencePiece when the folder has tokenizer.model (also when a tokenizer.json mirrors it),
  // else a byte-level BPE tokenizer.json.
  const std::filesystem::path tok(options.tokenizer_folder);
  if (std::filesystem::exists(tok / kSentencePieceModelFile))
    write_spm_tokenizer(w, options.tokenizer_folder, c.vocab_size);
  else if (std::filesystem::exists(tok / kTokenizerJsonFile))
    write_bpe_tokenizer(w, (tok / kTokenizerJsonFile).string(), c.vocab_size);
  else
    fail(options.tokenizer_folder, "no tokenizer.model (SentencePiece) or tokenizer.json (byte-level BPE) to write as GGUF tokenizer metadata");
  w.set_string(gguf_key::kQuantPolicy, options.policy.describe());
  if (options.extra_metadata) options.extra_metadata(w);
  for (const auto& [key, value] : options.provenance) w.set_string(gguf_key::kGemkitPrefix + key, value);

  report.file_bytes = w.file_size();
  w.write(path, options.overwrite);
  return report;
}

}  // namespace gemkit
