// A model's architecture, read from a Hugging Face config.json. Torch-free.
#pragma once
#include <cstdint>
#include <string>

namespace gemkit {

// Two families share one transformer implementation (model/transformer.h).
enum class Family { Decoder, Encoder };  // Llama/Qwen2 layout; BERT layout
enum class Head { None, CausalLM, MaskedLM, SequenceClassification };

// config.json "rope_scaling": how the RoPE inverse frequencies are rescaled for long context.
// Only the types that change nothing but inv_freq are supported (transformers'
// _compute_*_parameters with attention_factor 1):
//   "default": theta^(-2i/d) unchanged (also a null or absent rope_scaling);
//   "linear":  inv_freq / factor (position interpolation);
//   "llama3":  Llama 3.x: frequencies whose wavelength exceeds original_max_position_embeddings /
//              low_freq_factor are divided by factor, those below
//              original_max_position_embeddings / high_freq_factor are kept, and those in between
//              are interpolated smoothly.
struct RopeScaling {
  std::string type = "default";
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3 only
  double high_freq_factor = 4.0;  // llama3 only
  int64_t original_max_position_embeddings = 0;  // llama3 only
};

struct ModelConfig {
  Family family = Family::Decoder;
  Head head = Head::CausalLM;
  std::string architecture;  // e.g. LlamaForCausalLM, Qwen2ForCausalLM, BertForMaskedLM
  std::string model_type;    // llama, qwen2, bert

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // == num_attention_heads when absent (no GQA)
  int64_t max_position_embeddings = 0;

  // Decoder family.
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // config.json "head_dim" (decoder only): some checkpoints size q/k/v per head independently of
  // hidden_size (q_proj is hidden_size -> num_attention_heads * head_dim). 0: not given, i.e.
  // hidden_size / num_attention_heads.
  int64_t explicit_head_dim = 0;
  bool attention_bias = false;  // q/k/v bias (Qwen2: true)
  bool tie_word_embeddings = false;

  // Encoder family.
  double layer_norm_eps = 1e-12;
  int64_t type_vocab_size = 2;
  std::string hidden_act = "silu";  // decoder: silu; encoder: gelu (erf form)
  bool bert_prefix = true;          // tensor names start with "bert." (BertFor* checkpoints)

  // Sequence classification.
  int64_t num_labels = 2;

  int64_t bos_token_id = -1;  // -1: none
  int64_t eos_token_id = -1;
  int64_t pad_token_id = -1;
  std::string torch_dtype = "float32";  // dtype the checkpoint was saved in

  // The config.json text this was read from, so that saving keeps keys gemkit does not use.
  std::string source_json;

  int64_t head_dim() const {
    return explicit_head_dim > 0 ? explicit_head_dim : hidden_size / num_attention_heads;
  }

  // Parses config.json text. `where` (the file path) prefixes every error message.
  static ModelConfig from_json_text(const std::string& text, const std::string& where);
  static ModelConfig load(const std::string& config_json_path);
  // config.json text: the source keys, with gemkit's values written over them.
  std::string to_json_text() const;
};

const char* family_name(Family f);
const char* head_name(Head h);

}  // namespace gemkit
