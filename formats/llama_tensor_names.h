// Hugging Face Llama / Qwen2 tensor names <-> GGUF "llama" / "qwen2" tensor names (docs/design/formats.md). Torch-free.
//   model.embed_tokens.weight                      <-> token_embd.weight
//   model.layers.N.input_layernorm.weight          <-> blk.N.attn_norm.weight
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight <-> blk.N.attn_{q,k,v,output}.weight
//   model.layers.N.self_attn.{q,k,v}_proj.bias     <-> blk.N.attn_{q,k,v}.bias (Qwen2)
//   model.layers.N.post_attention_layernorm.weight <-> blk.N.ffn_norm.weight
//   model.layers.N.mlp.{gate,up,down}_proj.weight  <-> blk.N.ffn_{gate,up,down}.weight
//   model.norm.weight                              <-> output_norm.weight
//   lm_head.weight                                 <-> output.weight
// gemkit's compact format (runtime/model.h) adds, per block N:
//   blk.N.dtr_router.{weight,bias}                  the token router (DTR)
//   blk.N.scar_router.{query,keys}                  SCAR's router
//   blk.N.<linear>.expert.<name>.{lora_a,lora_b}    SCAR expert <name> on blk.N.<linear>.weight
#pragma once
#include <cstdint>
#include <string>

namespace gemkit {

// "" when the name has no GGUF counterpart.
std::string gguf_name_of_hf(const std::string& hf_name);
std::string hf_name_of_gguf(const std::string& gguf_name);

// The GGUF names by role, for code that reads or writes them one by one (the edge runtime, the
// exporters): the global tensors,
inline constexpr const char* kGgufTokenEmbd = "token_embd.weight";
inline constexpr const char* kGgufOutputNorm = "output_norm.weight";
inline constexpr const char* kGgufOutput = "output.weight";
// llama.cpp's per-frequency RoPE factors (Llama 3.1+), which the importer refuses,
inline constexpr const char* kGgufRopeFreqs = "rope_freqs.weight";
// the stems of a block's tensors (blk.N.<stem>.weight, and .bias for Qwen2's q/k/v),
inline constexpr const char* kGgufAttnNorm = "attn_norm";
inline constexpr const char* kGgufAttnQ = "attn_q";
inline constexpr const char* kGgufAttnK = "attn_k";
inline constexpr const char* kGgufAttnV = "attn_v";
inline constexpr const char* kGgufAttnOutput = "attn_output";
inline constexpr const char* kGgufFfnNorm = "ffn_norm";
inline constexpr const char* kGgufFfnGate = "ffn_gate";
inline constexpr const char* kGgufFfnUp = "ffn_up";
inline constexpr const char* kGgufFfnDown = "ffn_down";
// and the compact format's stems and parts.
inline constexpr const char* kCompactDtrRouter = "dtr_router";    // .weight, .bias
inline constexpr const char* kCompactScarRouter = "scar_router";  // .query, .keys
inline constexpr const char* kCompactLoraA = "lora_a";
inline constexpr const char* kCompactLoraB = "lora_b";

// "blk.N." and "blk.N.<stem>.<part>".
std::string gguf_block_prefix(int64_t block);
std::string gguf_block_tensor_name(int64_t block, const std::string& stem, const std::string& part = "weight");
// Whether `name` is "blk.N.<stem>.<part>" for some N.
bool is_gguf_block_tensor(const std::string& name, const std::string& stem, const std::string& part = "weight");
// "blk.N.<linear>.expert.<expert>.<part>" from the linear's weight name "blk.N.<linear>.weight"
// (part: kCompactLoraA or kCompactLoraB). Throws gemkit::Error when `linear_weight` does not end in ".weight".
std::string compact_expert_tensor_name(const std::string& linear_weight, const std::string& expert, const std::string& part);

}  // namespace gemkit
