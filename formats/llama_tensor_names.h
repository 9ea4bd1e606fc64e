// Hugging Face Llama / Qwen2 tensor names <-> GGUF "llama" / "qwen2" tensor names (docs/design/formats.md). Torch-free.
//   model.embed_tokens.weight                      <-> token_embd.weight
//   model.layers.N.input_layernorm.weight          <-> blk.N.attn_norm.weight
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight <-> blk.N.attn_{q,k,v,output}.weight
//   model.layers.N.self_attn.{q,k,v}_proj.bias     <-> blk.N.attn_{q,k,v}.bias (Qwen2)
//   model.layers.N.post_attention_layernorm.weight <-> blk.N.ffn_norm.weight
//   model.layers.N.mlp.{gate,up,down}_proj.weight  <-> blk.N.ffn_{gate,up,down}.weight
//   model.norm.weight                              <-> output_norm.weight
//   lm_head.weight                                 <-> output.weight
#pragma once
#include <string>

namespace gemkit {

// "" when the name has no GGUF counterpart.
std::string gguf_name_of_hf(const std::string& hf_name);
std::string hf_name_of_gguf(const std::string& gguf_name);

}  // namespace gemkit
