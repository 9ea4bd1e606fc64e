#include "model/gguf_model.h"

#include <set>

#include "core/error.h"
#include "formats/ggml_dequant.h"
#include "formats/gguf.h"
#include "formats/gguf_keys.h"
#include "formats/llama_tensor_names.h"

namespace gemkit {

torch::Tensor permute_rope_rows(const torch::Tensor& w, int64_t heads) {
  return w.reshape({heads, 2, w.size(0) / heads / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

torch::Tensor unpermute_rope_rows(const torch::Tensor& w, int64_t heads) {
  return w.reshape({heads, w.size(0) / heads / 2, 2, w.size(1)}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

namespace {

// "llama.<suffix>".
std::string llama_key(const char* suffix) { return gguf_key::arch_key(kLlamaArchitecture, suffix); }

int64_t required_int(const GgufFile& f, const char* suffix) {
  const std::string key = llama_key(suffix);
  const GgufValue* v = f.find(key);
  if (!v) fail(f.path(), key + ": missing (required for the llama architecture)");
  return v->as_int();
}

ModelConfig config_of(const GgufFile& f) {
  const std::string arch = f.get_string(gguf_key::kArchitecture, "");
  if (arch != kLlamaArchitecture)
    fail(f.path(), std::string(gguf_key::kArchitecture) + ": expected \"" + kLlamaArchitecture + "\", got \"" + arch + "\"");
  ModelConfig c;
  c.family = Family::Decoder;
  c.head = Head::CausalLM;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = required_int(f, gguf_key::kEmbeddingLength);
  c.intermediate_size = required_int(f, gguf_key::kFeedForwardLength);
  c.num_hidden_layers = required_int(f, gguf_key::kBlockCount);
  c.num_attention_heads = required_int(f, gguf_key::kHeadCount);
  c.num_key_value_heads = f.get_int(llama_key(gguf_key::kHeadCountKv), c.num_attention_heads);
  c.max_position_embeddings = required_int(f, gguf_key::kContextLength);
  if (const GgufValue* v = f.find(llama_key(gguf_key::kRmsEpsilon))) c.rms_norm_eps = v->as_double();
  if (const GgufValue* v = f.find(llama_key(gguf_key::kRopeFreqBase))) c.rope_theta = v->as_double();
  const GgufTensorInfo* embd = f.find_tensor(kGgufTokenEmbd);
  if (!embd || embd->dims.size() != 2) fail(f.path(), std::string(kGgufTokenEmbd) + ": missing or not 2-D");
  c.vocab_size = static_cast<int64_t>(embd->dims[1]);
  c.tie_word_embeddings = f.find_tensor(kGgufOutput) == nullptr;
  c.hidden_act = "silu";
  c.bos_token_id = f.get_int(gguf_key::kTokenizerBosId, -1);
  c.eos_token_id = f.get_int(gguf_key::kTokenizerEosId, -1);
  c.pad_token_id = f.get_int(gguf_key::kTokenizerPaddingId, -1);
  if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0)
    fail(f.path(), llama_key(gguf_key::kHeadCount) + ": must divide " + llama_key(gguf_key::kEmbeddingLength));
  const int64_t rope_dims = f.get_int(llama_key(gguf_key::kRopeDimensionCount), c.hidden_size / c.num_attention_heads);
  if (rope_dims != c.hidden_size / c.num_attention_heads)
    fail(f.path(), llama_key(gguf_key::kRopeDimensionCount) + ": partial RoPE (" + std::to_string(rope_dims) + " of " +
                       std::to_string(c.hidden_size / c.num_attention_heads) + " head dims) is not supported");
  return c;
}

torch::Tensor dequantized(const GgufFile& f, const GgufTensorInfo& t) {
  if (!ggml_can_dequantize(t.type))
    fail(f.path(), t.name + ": tensor type " + std::to_string(t.type) +
                       " is not supported (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)");
  std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());  // PyTorch order
  const int64_t n = shape.back(), rows = static_cast<int64_t>(t.n_elements) / n;
  torch::Tensor out = torch::empty(shape);
  const size_t row_bytes = static_cast<size_t>(n / ggml_block_elems(t.type)) * ggml_block_bytes(t.type);
  const uint8_t* src = f.tensor_data(t);
  for (int64_t r = 0; r < rows; ++r) ggml_dequantize_row(t.type, src + r * row_bytes, n, out.data_ptr<float>() + r * n);
  return out;
}

}  // namespace

Pretrained load_gguf_model(const std::string& path, const torch::Device& device) {
  const GgufFile f(path);
  ModelConfig config = config_of(f);
  Transformer model(config);
  auto params = model->named_parameters();
  std::set<std::string> loaded;
  torch::NoGradGuard no_grad;
  for (const GgufTensorInfo& t : f.tensors()) {
    const std::string hf = hf_name_of_gguf(t.name);
    if (hf.empty()) fail(path, t.name + ": not a tensor of the llama architecture this loader knows");
    torch::Tensor* p = params.find(hf);
    if (!p) fail(path, t.name + ": the model built from the llama.* keys has no " + hf);
    torch::Tensor v = dequantized(f, t);
    if (v.sizes() != p->sizes())
      fail(path, t.name + ": shape " + c10::str(v.sizes()) + " disagrees with the llama.* keys (" + c10::str(p->sizes()) + ")");
    if (is_gguf_block_tensor(t.name, kGgufAttnQ)) v = unpermute_rope_rows(v, config.num_attention_heads);
    if (is_gguf_block_tensor(t.name, kGgufAttnK)) v = unpermute_rope_rows(v, config.num_key_value_heads);
    p->copy_(v);
    loaded.insert(hf);
  }
  for (const auto& item : params)
    if (!loaded.count(item.key())) fail(path, "missing tensor " + gguf_name_of_hf(item.key()) + " (" + item.key() + ")");
  config.torch_dtype = "float32";
  model->to(device);
  return {std::move(config), std::move(model), {}};
}

}  // namespace gemkit
