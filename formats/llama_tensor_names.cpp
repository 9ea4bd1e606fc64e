#include "formats/llama_tensor_names.h"

#include <utility>

#include "core/error.h"

namespace gemkit {

namespace {

// Per-block tensors: the HF module (after "model.layers.N."), the GGUF stem (after "blk.N.")
// and the part both names end in.
struct BlockName {
  const char* hf;
  const char* gguf;
  const char* part;
};
const BlockName kBlockNames[] = {
    {"input_layernorm", kGgufAttnNorm, "weight"},
    {"self_attn.q_proj", kGgufAttnQ, "weight"},
    {"self_attn.k_proj", kGgufAttnK, "weight"},
    {"self_attn.v_proj", kGgufAttnV, "weight"},
    {"self_attn.o_proj", kGgufAttnOutput, "weight"},
    {"self_attn.q_proj", kGgufAttnQ, "bias"},  // Qwen2
    {"self_attn.k_proj", kGgufAttnK, "bias"},
    {"self_attn.v_proj", kGgufAttnV, "bias"},
    {"post_attention_layernorm", kGgufFfnNorm, "weight"},
    {"mlp.gate_proj", kGgufFfnGate, "weight"},
    {"mlp.up_proj", kGgufFfnUp, "weight"},
    {"mlp.down_proj", kGgufFfnDown, "weight"},
};
const std::pair<const char*, const char*> kGlobalNames[] = {
    {"model.embed_tokens.weight", kGgufTokenEmbd},
    {"model.norm.weight", kGgufOutputNorm},
    {"lm_head.weight", kGgufOutput},
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
  for (const BlockName& b : kBlockNames) {
    const std::string hf = std::string(b.hf) + "." + b.part, gg = std::string(b.gguf) + "." + b.part;
    if (rest == (forward ? hf : gg)) return to_prefix + index + "." + (forward ? gg : hf);
  }
  return "";
}

}  // namespace

std::string gguf_name_of_hf(const std::string& hf_name) { return translate(hf_name, "model.layers.", "blk.", true); }
std::string hf_name_of_gguf(const std::string& gguf_name) { return translate(gguf_name, "blk.", "model.layers.", false); }

std::string gguf_block_prefix(int64_t block) { return "blk." + std::to_string(block) + "."; }

std::string gguf_block_tensor_name(int64_t block, const std::string& stem, const std::string& part) {
  return gguf_block_prefix(block) + stem + "." + part;
}

bool is_gguf_block_tensor(const std::string& name, const std::string& stem, const std::string& part) {
  return split_block(name, "blk.").second == stem + "." + part;
}

std::string compact_expert_tensor_name(const std::string& linear_weight, const std::string& expert, const std::string& part) {
  const std::string suffix = ".weight";
  if (linear_weight.size() <= suffix.size() ||
      linear_weight.compare(linear_weight.size() - suffix.size(), suffix.size(), suffix) != 0)
    fail(linear_weight, "not the weight of a linear layer (expected a name ending in .weight)");
  return linear_weight.substr(0, linear_weight.size() - suffix.size()) + ".expert." + expert + "." + part;
}

}  // namespace gemkit
