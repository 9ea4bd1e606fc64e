#include "export/gguf_export.h"

#include <filesystem>

#include "core/error.h"
#include "data/sentencepiece_model.h"
#include "export/gguf_writer.h"
#include "model/gguf_model.h"
#include "model/llama_tensor_names.h"

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

void write_spm_tokenizer(GgufWriter& w, const std::string& folder, int64_t vocab_size) {
  const std::string path = (std::filesystem::path(folder) / "tokenizer.model").string();
  if (!std::filesystem::exists(path))
    fail(folder, "no tokenizer.model: gguf export writes SentencePiece tokenizers (tokenizer.ggml.model \"llama\"); "
                 "byte-level BPE tokenizer.json export is not supported yet");
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
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_f32s("tokenizer.ggml.scores", scores);
  w.set_i32s("tokenizer.ggml.token_type", types);
  if (spm.bos_id >= 0) w.set_u32("tokenizer.ggml.bos_token_id", spm.bos_id);
  if (spm.eos_id >= 0) w.set_u32("tokenizer.ggml.eos_token_id", spm.eos_id);
  if (spm.unk_id >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", spm.unk_id);
  if (spm.pad_id >= 0) w.set_u32("tokenizer.ggml.padding_token_id", spm.pad_id);
  w.set_bool("tokenizer.ggml.add_bos_token", spm.bos_id >= 0);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
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
    case QuantType::F32: return 0;
    case QuantType::F16: return 1;
    case QuantType::Q4_0: return 2;
    case QuantType::Q8_0: return 7;
  }
  return 0;
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
    if (gg.find("attn_q.weight") != std::string::npos) t = permute_rope_rows(t, c.num_attention_heads);
    if (gg.find("attn_k.weight") != std::string::npos) t = permute_rope_rows(t, c.num_key_value_heads);
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

  w.set_string("general.architecture", "llama");
  w.set_string("general.name", options.name.empty() ? "gemkit model" : options.name);
  w.set_u32("general.file_type", file_type_of(report.tensors));
  if (quantized) w.set_u32("general.quantization_version", 2);
  w.set_u32("llama.context_length", c.max_position_embeddings);
  w.set_u32("llama.embedding_length", c.hidden_size);
  w.set_u32("llama.block_count", c.num_hidden_layers);
  w.set_u32("llama.feed_forward_length", c.intermediate_size);
  w.set_u32("llama.attention.head_count", c.num_attention_heads);
  w.set_u32("llama.attention.head_count_kv", c.num_key_value_heads);
  w.set_u32("llama.rope.dimension_count", c.head_dim());
  w.set_f32("llama.rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.set_u32("llama.vocab_size", c.vocab_size);
  write_spm_tokenizer(w, options.tokenizer_folder, c.vocab_size);
  w.set_string("gemkit.quant_policy", options.policy.describe());
  for (const auto& [key, value] : options.provenance) w.set_string("gemkit." + key, value);

  report.file_bytes = w.file_size();
  w.write(path, options.overwrite);
  return report;
}

}  // namespace gemkit
