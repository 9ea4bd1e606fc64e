#include "formats/llama_tensor_names.h"

#include <utility>

namespace gemkit {

namespace {

// Per-block suffixes: HF (after "model.layers.N.") and GGUF (after "blk.N.").
const std::pair<const char*, const char*> kBlockNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},  // Qwen2
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};
const std::pair<const char*, const char*> kGlobalNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// "PREFIX<digits>.REST" -> {digits, REST}; {"", ""} when it does not have that form.
std::pair<std::string, std::string> split_block(const std::string& name, const std::string& prefix) {
  if (name.compare(0, prefix.size(), prefix) != 0) return {};
  size_t i = prefix.size();
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i == prefix.size() || i >= name.size() || name[i] != '.') return {};
  return {name.substr(prefix.size(), i - prefix.size()), name.substr(i + 1)};
}

std::string translate(const std::string& name, const std::string& from_prefix, const std::string& to_prefix, bool forward) {
  for (const auto& [hf, gg] : kGlobalNames)
    if (name == (forward ? hf : gg)) return forward ? gg : hf;
  const auto [index, rest] = split_block(name, from_prefix);
  if (index.empty()) return "";
  for (const auto& [hf, gg] : kBlockNames)
    if (rest == (forward ? hf : gg)) return to_prefix + index + "." + (forward ? gg : hf);
  return "";
}

}  // namespace

std::string gguf_name_of_hf(const std::string& hf_name) { return translate(hf_name, "model.layers.", "blk.", true); }
std::string hf_name_of_gguf(const std::string& gguf_name) { return translate(gguf_name, "blk.", "model.layers.", false); }

}  // namespace gemkit
