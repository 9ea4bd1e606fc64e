#include "import/gguf_import.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "core/sha256.h"
#include "core/utf8.h"
#include "formats/block_quant.h"
#include "formats/ggml_dequant.h"
#include "formats/gguf.h"
#include "formats/gguf_keys.h"
#include "formats/llama_tensor_names.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "import/tokenizer_files.h"

namespace gemkit {

namespace {

using json = nlohmann::json;

// The architectures this importer maps onto a Hugging Face class.
struct Architecture {
  const char* gguf;       // general.architecture
  const char* hf_class;   // config.json architectures[0]
  const char* model_type;
  bool permuted_rope;     // llama.cpp permuted q/k rows at conversion (llama: yes, qwen2: no)
  bool attention_bias;    // q/k/v biases
};
constexpr Architecture kArchitectures[] = {
    {kLlamaArchitecture, "LlamaForCausalLM", "llama", true, false},
    {kQwen2Architecture, "Qwen2ForCausalLM", "qwen2", false, true},
};

const Architecture& architecture_of(const GgufFile& f) {
  const std::string arch = f.get_string(gguf_key::kArchitecture, "");
  for (const Architecture& a : kArchitectures)
    if (arch == a.gguf) return a;
  fail(f.path(), std::string(gguf_key::kArchitecture) + ": expected \"" + kLlamaArchitecture + "\" or \"" +
                     kQwen2Architecture + "\", got \"" + arch + "\"");
}

// GGUF stores these as f32: 1e-5 arrives as 9.99999974738e-06. config.json gets the shortest
// decimal that reads back as the same f32 (what the original config said), not the widened double.
double shortest_f32(double x) {
  const float f = static_cast<float>(x);
  char buf[32];
  for (int precision = 1; precision <= 9; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return x;
}

int64_t required_int(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) fail(f.path(), key + ": missing (required to build config.json)");
  const int64_t x = v->as_int();
  if (x <= 0) fail(f.path(), key + ": expected a positive integer, got " + std::to_string(x));
  return x;
}

ModelConfig config_of(const GgufFile& f, const Architecture& a, const std::string& torch_dtype) {
  namespace k = gguf_key;
  auto key = [&](const char* suffix) { return k::arch_key(a.gguf, suffix); };
  if (f.find_tensor(kGgufRopeFreqs))
    fail(f.path(), std::string(kGgufRopeFreqs) + ": per-frequency RoPE factors (Llama 3.1+ long-context scaling) "
                   "are not supported by the importer");
  ModelConfig c;
  c.family = Family::Decoder;
  c.head = Head::CausalLM;
  c.architecture = a.hf_class;
  c.model_type = a.model_type;
  c.hidden_size = required_int(f, key(k::kEmbeddingLength));
  c.intermediate_size = required_int(f, key(k::kFeedForwardLength));
  c.num_hidden_layers = required_int(f, key(k::kBlockCount));
  // Each block holds nine tensors: a count the file cannot hold is refused before anything is
  // built per block (the fuzzer's 16-million-block header took 20 s listing names).
  if (c.num_hidden_layers > int64_t(f.tensors().size()) / 9)
    fail(f.path(), key(k::kBlockCount) + ": " + std::to_string(c.num_hidden_layers) + " blocks need at least " +
                       "9 tensors each, the file has " + std::to_string(f.tensors().size()) + " tensors");
  c.num_attention_heads = required_int(f, key(k::kHeadCount));
  c.num_key_value_heads = f.find(key(k::kHeadCountKv)) ? required_int(f, key(k::kHeadCountKv)) : c.num_attention_heads;
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(f.path(), key(k::kHeadCountKv) + ": " + std::to_string(c.num_key_value_heads) + " does not divide " +
                       k::kHeadCount + " " + std::to_string(c.num_attention_heads));
  c.max_position_embeddings = required_int(f, key(k::kContextLength));
  if (const GgufValue* v = f.find(key(k::kRmsEpsilon))) c.rms_norm_eps = shortest_f32(v->as_double());
  if (const GgufValue* v = f.find(key(k::kRopeFreqBase))) c.rope_theta = shortest_f32(v->as_double());
  const int64_t head_dim = f.find(key(k::kKeyLength)) ? required_int(f, key(k::kKeyLength))
                                                      : c.hidden_size / c.num_attention_heads;
  if (f.find(key(k::kValueLength)) && required_int(f, key(k::kValueLength)) != head_dim)
    fail(f.path(), key(k::kValueLength) + ": differs from " + k::kKeyLength + " (not supported)");
  if (head_dim != c.hidden_size / c.num_attention_heads || c.hidden_size % c.num_attention_heads != 0)
    c.explicit_head_dim = head_dim;
  if (head_dim % 2 != 0)
    fail(f.path(), key(k::kKeyLength) + ": expected an even head size, got " + std::to_string(head_dim));
  const int64_t rope_dims = f.get_int(key(k::kRopeDimensionCount), head_dim);
  if (rope_dims != head_dim)
    fail(f.path(), key(k::kRopeDimensionCount) + ": partial RoPE (" + std::to_string(rope_dims) + " of " +
                       std::to_string(head_dim) + " head dims) is not supported");
  const std::string scaling = f.get_string(key(k::kRopeScalingType), "none");
  if (scaling == "linear") {
    c.rope_scaling.type = "linear";
    const GgufValue* factor = f.find(key(k::kRopeScalingFactor));
    if (!factor) fail(f.path(), key(k::kRopeScalingFactor) + ": missing for linear RoPE scaling");
    c.rope_scaling.factor = factor->as_double();
  } else if (scaling != "none") {
    fail(f.path(), key(k::kRopeScalingType) + ": expected \"none\" or \"linear\", got \"" + scaling + "\"");
  }
  const GgufTensorInfo* embd = f.find_tensor(kGgufTokenEmbd);
  if (!embd || embd->dims.size() != 2) fail(f.path(), std::string(kGgufTokenEmbd) + ": missing or not 2-D");
  c.vocab_size = static_cast<int64_t>(embd->dims[1]);
  if (static_cast<int64_t>(embd->dims[0]) != c.hidden_size)
    fail(f.path(), std::string(kGgufTokenEmbd) + ": width " + std::to_string(embd->dims[0]) + " disagrees with " +
                       key(k::kEmbeddingLength) + " " + std::to_string(c.hidden_size));
  // llama.cpp refuses such a file; imported, the tokenizer would hand out ids past the table.
  // More rows than tokens is fine (tables padded to a multiple of 64 or 128).
  if (const GgufValue* tokens = f.find(k::kTokenizerTokens); tokens && int64_t(tokens->size()) > c.vocab_size)
    fail(f.path(), std::string(k::kTokenizerTokens) + ": " + std::to_string(tokens->size()) + " tokens, but " +
                       kGgufTokenEmbd + " has only " + std::to_string(c.vocab_size) + " rows");
  c.tie_word_embeddings = f.find_tensor(kGgufOutput) == nullptr;
  c.attention_bias = a.attention_bias;
  c.hidden_act = "silu";
  c.bos_token_id = f.get_int(k::kTokenizerBosId, -1);
  c.eos_token_id = f.get_int(k::kTokenizerEosId, -1);
  c.pad_token_id = f.get_int(k::kTokenizerPaddingId, -1);
  c.torch_dtype = torch_dtype;
  return c;
}

// The shape every Hugging Face tensor of config `c` has ([out, in] for matrices).
std::vector<int64_t> expected_shape(const ModelConfig& c, const std::string& hf) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim(),
                kv = c.num_key_value_heads * c.head_dim(), ff = c.intermediate_size;
  auto ends = [&](const char* s) { return hf.size() >= std::strlen(s) && hf.compare(hf.size() - std::strlen(s), std::string::npos, s) == 0; };
  if (hf == "model.embed_tokens.weight" || hf == "lm_head.weight") return {c.vocab_size, h};
  if (ends("norm.weight") || ends("layernorm.weight")) return {h};
  if (ends("q_proj.weight")) return {q, h};
  if (ends("k_proj.weight") || ends("v_proj.weight")) return {kv, h};
  if (ends("o_proj.weight")) return {h, q};
  if (ends("q_proj.bias")) return {q};
  if (ends("k_proj.bias") || ends("v_proj.bias")) return {kv};
  if (ends("gate_proj.weight") || ends("up_proj.weight")) return {ff, h};
  if (ends("down_proj.weight")) return {h, ff};
  return {};
}

// Every tensor name the Hugging Face model of `c` has.
std::set<std::string> expected_names(const ModelConfig& c) {
  std::set<std::string> names = {"model.embed_tokens.weight", "model.norm.weight"};
  if (!c.tie_word_embeddings) names.insert("lm_head.weight");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    for (const char* s : {"input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
                          "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      names.insert(l + s);
    if (c.attention_bias)
      for (const char* s : {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}) names.insert(l + s);
  }
  return names;
}

// llama.cpp's conversion stores q/k rows of each head interleaved (pairs (j, j + d/2) next to
// each other) for its RoPE; Hugging Face rotates halves. Row (head, pair j, s) of the file is
// row (head, s, j) of the Hugging Face weight. Works on weights [rows, cols] and biases (cols 1).
std::vector<float> unpermute_rows(const std::vector<float>& x, int64_t heads, int64_t rows, int64_t cols) {
  std::vector<float> y(x.size());
  const int64_t hd = rows / heads, half = hd / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t s = 0; s < 2; ++s) {
        const float* src = x.data() + (h * hd + j * 2 + s) * cols;
        float* dst = y.data() + (h * hd + s * half + j) * cols;
        std::memcpy(dst, src, static_cast<size_t>(cols) * sizeof(float));
      }
  return y;
}

DType storage_dtype(const std::string& name, std::string* torch_dtype) {
  if (name == "f32") { *torch_dtype = "float32"; return DType::F32; }
  if (name == "bf16") { *torch_dtype = "bfloat16"; return DType::BF16; }
  if (name == "f16") { *torch_dtype = "float16"; return DType::F16; }
  fail("--dtype", "expected f32, bf16 or f16, got '" + name + "'");
}

// float32 -> bfloat16 bits, round to nearest even (as torch's .to(torch.bfloat16)); NaN stays NaN.
uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

std::shared_ptr<std::vector<uint8_t>> stored(const std::vector<float>& x, DType dtype) {
  auto out = std::make_shared<std::vector<uint8_t>>(x.size() * dtype_size(dtype));
  if (dtype == DType::F32) {
    std::memcpy(out->data(), x.data(), out->size());
  } else {
    uint16_t* o = reinterpret_cast<uint16_t*>(out->data());
    for (size_t i = 0; i < x.size(); ++i) o[i] = dtype == DType::BF16 ? bf16_bits(x[i]) : fp32_to_fp16(x[i]);
  }
  return out;
}

}  // namespace

GgufImportReport import_gguf_into(const std::string& gguf_path, const std::string& dir,
                                  const std::string& dtype_name) {
  std::string torch_dtype;
  const DType dtype = storage_dtype(dtype_name, &torch_dtype);
  const GgufFile f(gguf_path);
  const Architecture& arch = architecture_of(f);
  const ModelConfig config = config_of(f, arch, torch_dtype);

  GgufImportReport report;
  report.architecture = arch.gguf;
  report.name = checked_utf8(f.get_string(gguf_key::kName, ""), gguf_path + ": " + gguf_key::kName);
  const std::set<std::string> wanted = expected_names(config);
  std::set<std::string> seen;
  SafetensorsWriter writer;
  for (const GgufTensorInfo& t : f.tensors()) {
    const std::string hf = hf_name_of_gguf(t.name);
    if (hf.empty() || !wanted.count(hf))
      fail(gguf_path, t.name + ": not a tensor of the " + std::string(arch.gguf) + " architecture built from the " +
                          arch.gguf + ".* keys");
    if (!ggml_can_dequantize(t.type))
      fail(gguf_path, t.name + ": tensor type " + std::to_string(t.type) +
                          " is not supported (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k)");
    std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());  // PyTorch order
    if (shape != expected_shape(config, hf)) {
      std::string got, want;
      for (int64_t d : shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : expected_shape(config, hf)) want += (want.empty() ? "" : ", ") + std::to_string(d);
      fail(gguf_path, t.name + ": shape [" + got + "] disagrees with the " + std::string(arch.gguf) + ".* keys ([" + want + "])");
    }
    const int64_t cols = shape.back(), rows = static_cast<int64_t>(t.n_elements) / cols;
    std::vector<float> values(t.n_elements);
    const uint8_t* src = f.tensor_data(t);
    const size_t row_bytes = static_cast<size_t>(cols / ggml_block_elems(t.type)) * ggml_block_bytes(t.type);
    for (int64_t r = 0; r < rows; ++r) ggml_dequantize_row(t.type, src + r * row_bytes, cols, values.data() + r * cols);
    if (arch.permuted_rope) {
      const bool is_q = hf.find("q_proj") != std::string::npos, is_k = hf.find("k_proj") != std::string::npos;
      if (is_q || is_k) {
        const int64_t heads = is_q ? config.num_attention_heads : config.num_key_value_heads;
        const int64_t n_rows = shape[0], n_cols = shape.size() == 2 ? shape[1] : 1;
        values = unpermute_rows(values, heads, n_rows, n_cols);
      }
    }
    auto bytes = stored(values, dtype);
    writer.add(hf, dtype, shape, bytes->data(), bytes->size(), bytes);
    seen.insert(hf);
    ++report.tensor_types[ggml_dequant_type_name(t.type)];
    report.n_parameters += static_cast<int64_t>(t.n_elements);
  }
  for (const std::string& name : wanted)
    if (!seen.count(name)) fail(gguf_path, "missing tensor " + gguf_name_of_hf(name) + " (" + name + ")");
  report.n_tensors = static_cast<int64_t>(seen.size());
  report.sha256 = sha256_file(gguf_path);

  json provenance = {
      {"format", "gemkit-import"},
      {"version", 1},
      {"source", {{"file", std::filesystem::path(gguf_path).filename().string()},
                  {"size", std::filesystem::file_size(gguf_path)},
                  {"sha256", report.sha256},
                  {"gguf_version", f.version()},
                  {"architecture", arch.gguf},
                  {"name", report.name},
                  {"file_type", f.get_int(gguf_key::kFileType, -1)},
                  {"tensor_types", report.tensor_types}}},
      {"stored_dtype", dtype_name},
      {"rope_rows_unpermuted", arch.permuted_rope},
  };
  json generation = {{"_from", "gemkit import gguf"}};
  if (config.bos_token_id >= 0) generation["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_id >= 0) generation["eos_token_id"] = config.eos_token_id;
  if (config.pad_token_id >= 0) generation["pad_token_id"] = config.pad_token_id;

  writer.write(dir + "/model.safetensors");
  write_text_file_atomic(dir + "/config.json", config.to_json_text());
  write_text_file_atomic(dir + "/generation_config.json", generation.dump(2) + "\n");
  write_hf_tokenizer_files(f, dir);
  write_text_file_atomic(dir + "/gemkit_import.json", provenance.dump(2) + "\n");
  return report;
}

GgufImportReport import_gguf(const std::string& gguf_path, const std::string& out_dir,
                             const GgufImportOptions& options) {
  std::string torch_dtype;
  storage_dtype(options.dtype, &torch_dtype);  // a bad --dtype fails before any work
  if (!options.force && std::filesystem::exists(out_dir)) fail(out_dir, "exists; pass --force to replace it");
  GgufImportReport report;
  write_directory_atomic(out_dir, options.force, [&](const std::string& dir) {
    report = import_gguf_into(gguf_path, dir, options.dtype);
  });
  return report;
}

}  // namespace gemkit
