#include "formats/model_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace gemkit {

using json = nlohmann::json;

namespace {

struct Architecture {
  const char* name;
  const char* model_type;
  Family family;
  Head head;
};

// The architectures gemkit implements. Each maps to exactly one tensor layout, so a
// checkpoint of any other architecture is refused here rather than half-loaded later.
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Family::Decoder, Head::CausalLM},
    {"Qwen2ForCausalLM", "qwen2", Family::Decoder, Head::CausalLM},
    {"BertModel", "bert", Family::Encoder, Head::None},
    {"BertForMaskedLM", "bert", Family::Encoder, Head::MaskedLM},
    {"BertForSequenceClassification", "bert", Family::Encoder, Head::SequenceClassification},
};

// Reads typed keys of one config.json; every error names the file and the key.
class Reader {
 public:
  // `prefix` names a nested object in messages ("rope_scaling." -> key "rope_scaling.factor").
  Reader(const json& j, const std::string& where, std::string prefix = "")
      : j_(j), where_(where), prefix_(std::move(prefix)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  int64_t integer(const char* key) const {
    require(key);
    return as_integer(j_[key], key);
  }
  int64_t integer(const char* key, int64_t fallback) const {
    return has(key) ? as_integer(j_[key], key) : fallback;
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_number()) wrong_type(key, "a number");
    return j_[key].get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_boolean()) wrong_type(key, "true or false");
    return j_[key].get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_string()) wrong_type(key, "a string");
    return j_[key].get<std::string>();
  }
  // Token ids: an integer, null (none) or, as in Llama 3, a list whose first entry is used.
  int64_t token_id(const char* key) const {
    if (!has(key)) return -1;
    const json& v = j_[key];
    if (v.is_array()) {
      if (v.empty()) return -1;
      return as_integer(v.front(), key);
    }
    return as_integer(v, key);
  }

  double number(const char* key) const {
    require(key);
    return number(key, 0.0);
  }

  void require(const char* key) const {
    if (!has(key)) fail(where_, "expected key \"" + prefix_ + key + "\", not found");
  }
  [[noreturn]] void invalid(const char* key, const std::string& what) const {
    fail(where_, "key \"" + prefix_ + key + "\": " + what);
  }

 private:
  int64_t as_integer(const json& v, const char* key) const {
    if (v.is_number_integer()) return v.get<int64_t>();
    wrong_type(key, "an integer");
  }
  [[noreturn]] void wrong_type(const char* key, const char* expected) const {
    invalid(key, std::string("expected ") + expected + ", got " + j_[key].dump());
  }

  const json& j_;
  const std::string& where_;
  const std::string prefix_;
};

void require_positive(const Reader& r, const char* key, double value) {
  if (!(value > 0)) r.invalid(key, "expected a positive value, got " + std::to_string(value));
}

// The RoPE types gemkit computes (see RopeScaling). The others (dynamic, yarn, longrope, ...)
// also rescale attention or depend on the sequence length; running them as plain RoPE would
// silently give wrong outputs, so they are refused.
constexpr const char* kRopeTypes[] = {"default", "linear", "llama3"};

// One RoPE parameter object: "rope_scaling" (transformers 4.x) or "rope_parameters"
// (transformers 5, which also moves rope_theta into it). `key` is the config key it came from.
RopeScaling parse_rope_scaling(const json& object, const char* key, const std::string& where) {
  if (!object.is_object())
    fail(where, std::string("key \"") + key + "\": expected an object or null, got " + object.dump());
  const Reader r(object, where, std::string(key) + ".");
  RopeScaling s;
  // "type" is what configs written before transformers 4.43 call "rope_type".
  const char* type_key = r.has("rope_type") || !r.has("type") ? "rope_type" : "type";
  r.require(type_key);
  s.type = r.string(type_key, "");
  bool known = false;
  std::string supported;
  for (const char* t : kRopeTypes) {
    known = known || s.type == t;
    supported += std::string(supported.empty() ? "\"" : ", \"") + t + "\"";
  }
  if (!known)
    r.invalid(type_key, "expected one of " + supported + " (other RoPE types are not supported), got \"" +
                            s.type + "\"");
  if (s.type == "linear" || s.type == "llama3") {
    s.factor = r.number("factor");
    require_positive(r, "factor", s.factor);
  }
  if (s.type == "llama3") {
    s.low_freq_factor = r.number("low_freq_factor");
    s.high_freq_factor = r.number("high_freq_factor");
    s.original_max_position_embeddings = r.integer("original_max_position_embeddings");
    require_positive(r, "low_freq_factor", s.low_freq_factor);
    require_positive(r, "original_max_position_embeddings",
                     static_cast<double>(s.original_max_position_embeddings));
    // The interpolation divides by high - low; equal factors would make it 0/0.
    if (!(s.high_freq_factor > s.low_freq_factor))
      r.invalid("high_freq_factor", "expected more than low_freq_factor " + std::to_string(s.low_freq_factor) +
                                        ", got " + std::to_string(s.high_freq_factor));
  }
  return s;
}

// The RoPE object to write under `key` ("rope_scaling" or "rope_parameters"): gemkit's values
// over the source object when it is of the same type (its other keys survive), else a new one.
json rope_scaling_json(const ModelConfig& c, const json& source, const std::string& key) {
  const RopeScaling& s = c.rope_scaling;
  const bool with_theta = key == "rope_parameters";
  json out;
  if (source.is_object()) {
    const json& type = source.contains("rope_type") ? source["rope_type"] : source.value("type", json());
    if (type.is_string() && type.get<std::string>() == s.type) out = source;
  }
  if (out.is_null()) {
    // Plain RoPE: Llama configs write "rope_scaling": null.
    if (s.type == "default" && !with_theta) return nullptr;
    out = json::object();
  }
  out["rope_type"] = s.type;
  if (out.contains("type")) out["type"] = s.type;  // a reader of either key sees the same type
  if (s.type == "linear" || s.type == "llama3") out["factor"] = s.factor;
  if (s.type == "llama3") {
    out["low_freq_factor"] = s.low_freq_factor;
    out["high_freq_factor"] = s.high_freq_factor;
    out["original_max_position_embeddings"] = s.original_max_position_embeddings;
  }
  if (with_theta) out["rope_theta"] = c.rope_theta;
  return out;
}

}  // namespace

const char* family_name(Family f) {
  switch (f) {
    case Family::Decoder: return "decoder";
    case Family::Encoder: return "encoder";
  }
  return "unknown";
}

const char* head_name(Head h) {
  switch (h) {
    case Head::None: return "none";
    case Head::CausalLM: return "causal-lm";
    case Head::MaskedLM: return "masked-lm";
    case Head::SequenceClassification: return "sequence-classification";
  }
  return "unknown";
}

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(where, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(where, std::string("expected a JSON object, got ") + j.type_name());
  const Reader r(j, where);

  ModelConfig c;
  c.source_json = text;

  r.require("architectures");
  const json& archs = j["architectures"];
  if (!archs.is_array() || archs.size() != 1 || !archs[0].is_string())
    r.invalid("architectures", "expected a list of one architecture name, got " + archs.dump());
  c.architecture = archs[0].get<std::string>();
  const Architecture* arch = nullptr;
  for (const auto& a : kArchitectures)
    if (c.architecture == a.name) arch = &a;
  if (!arch) {
    std::string supported;
    for (const auto& a : kArchitectures) supported += std::string(supported.empty() ? "" : ", ") + a.name;
    r.invalid("architectures", "expected one of " + supported + ", got " + c.architecture);
  }
  c.family = arch->family;
  c.head = arch->head;
  c.model_type = r.string("model_type", arch->model_type);
  if (c.model_type != arch->model_type)
    r.invalid("model_type", std::string("expected \"") + arch->model_type + "\" for " + c.architecture +
                                ", got \"" + c.model_type + "\"");

  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.num_hidden_layers = r.integer("num_hidden_layers");
  c.num_attention_heads = r.integer("num_attention_heads");
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_attention_heads);
  c.max_position_embeddings = r.integer("max_position_embeddings");
  for (auto [key, value] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                            {"hidden_size", c.hidden_size},
                            {"intermediate_size", c.intermediate_size},
                            {"num_hidden_layers", c.num_hidden_layers},
                            {"num_attention_heads", c.num_attention_heads},
                            {"num_key_value_heads", c.num_key_value_heads},
                            {"max_position_embeddings", c.max_position_embeddings}})
    require_positive(r, key, static_cast<double>(value));
  // Llama and Qwen2 take head_dim as given (hidden_size need not be heads * head_dim: q_proj
  // maps hidden_size to heads * head_dim); BERT has no such key, so there it must agree.
  const bool own_head_dim = c.family == Family::Decoder && r.has("head_dim");
  if (own_head_dim) {
    c.explicit_head_dim = r.integer("head_dim");
    require_positive(r, "head_dim", static_cast<double>(c.explicit_head_dim));
    // Rotary embeddings rotate dimension pairs (i, i + head_dim / 2).
    if (c.explicit_head_dim % 2 != 0)
      r.invalid("head_dim", "expected an even number (rotary embeddings), got " + std::to_string(c.explicit_head_dim));
  } else if (c.hidden_size % c.num_attention_heads != 0) {
    r.invalid("num_attention_heads", "expected a divisor of hidden_size " + std::to_string(c.hidden_size) +
                                         ", got " + std::to_string(c.num_attention_heads));
  }
  if (!own_head_dim && r.has("head_dim") && r.integer("head_dim") != c.head_dim())
    r.invalid("head_dim", "expected hidden_size / num_attention_heads = " + std::to_string(c.head_dim()) +
                              ", got " + std::to_string(r.integer("head_dim")));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.invalid("num_key_value_heads", "expected a divisor of num_attention_heads " +
                                         std::to_string(c.num_attention_heads) + ", got " +
                                         std::to_string(c.num_key_value_heads));

  if (c.family == Family::Decoder) {
    c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
    c.rope_theta = r.number("rope_theta", 10000.0);
    require_positive(r, "rms_norm_eps", c.rms_norm_eps);
    require_positive(r, "rope_theta", c.rope_theta);
    // transformers 5 writes "rope_parameters" (with rope_theta inside) instead of
    // "rope_scaling"; a config with both is read from rope_parameters, the newer layout.
    if (r.has("rope_parameters")) {
      c.rope_scaling = parse_rope_scaling(j["rope_parameters"], "rope_parameters", where);
      const Reader p(j["rope_parameters"], where, "rope_parameters.");
      c.rope_theta = p.number("rope_theta", c.rope_theta);
      require_positive(p, "rope_theta", c.rope_theta);
    } else if (r.has("rope_scaling")) {
      c.rope_scaling = parse_rope_scaling(j["rope_scaling"], "rope_scaling", where);
    }
    // Qwen2's attention always has q/k/v biases and its config carries no attention_bias key.
    c.attention_bias = c.model_type == "qwen2" ? true : r.boolean("attention_bias", false);
    c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
    c.hidden_act = r.string("hidden_act", "silu");
    if (c.hidden_act != "silu") r.invalid("hidden_act", "expected \"silu\", got \"" + c.hidden_act + "\"");
    // Sliding-window attention changes the computation; running such a checkpoint with full
    // attention would silently give wrong outputs.
    if (r.boolean("use_sliding_window", false))
      r.invalid("use_sliding_window", "sliding-window attention is not supported, got true");
    if (r.boolean("mlp_bias", false)) r.invalid("mlp_bias", "MLP biases are not supported, got true");
  } else {
    c.layer_norm_eps = r.number("layer_norm_eps", 1e-12);
    require_positive(r, "layer_norm_eps", c.layer_norm_eps);
    c.type_vocab_size = r.integer("type_vocab_size", 2);
    require_positive(r, "type_vocab_size", static_cast<double>(c.type_vocab_size));
    // BertForMaskedLM ties its decoder to the word embeddings unless told otherwise.
    c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
    c.hidden_act = r.string("hidden_act", "gelu");
    if (c.hidden_act != "gelu") r.invalid("hidden_act", "expected \"gelu\", got \"" + c.hidden_act + "\"");
    const std::string positions = r.string("position_embedding_type", "absolute");
    if (positions != "absolute")
      r.invalid("position_embedding_type", "expected \"absolute\", got \"" + positions + "\"");
    c.bert_prefix = c.architecture != "BertModel";
    if (c.num_key_value_heads != c.num_attention_heads)
      r.invalid("num_key_value_heads", "expected num_attention_heads for BERT, got " +
                                           std::to_string(c.num_key_value_heads));
  }

  if (r.has("num_labels")) {
    c.num_labels = r.integer("num_labels");
  } else if (r.has("id2label")) {
    if (!j["id2label"].is_object()) r.invalid("id2label", "expected an object, got " + j["id2label"].dump());
    c.num_labels = static_cast<int64_t>(j["id2label"].size());
  }
  require_positive(r, "num_labels", static_cast<double>(c.num_labels));

  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");
  c.pad_token_id = r.token_id("pad_token_id");
  // Newer transformers write "dtype"; older ones "torch_dtype".
  c.torch_dtype = r.string("torch_dtype", r.string("dtype", "float32"));
  if (c.torch_dtype != "float32" && c.torch_dtype != "float16" && c.torch_dtype != "bfloat16")
    r.invalid(r.has("torch_dtype") ? "torch_dtype" : "dtype",
              "expected float32, float16 or bfloat16, got \"" + c.torch_dtype + "\"");
  return c;
}

ModelConfig ModelConfig::load(const std::string& config_json_path) {
  return from_json_text(read_text_file(config_json_path), config_json_path);
}

std::string ModelConfig::to_json_text() const {
  json j = json::object();
  if (!source_json.empty()) {
    j = json::parse(source_json, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) j = json::object();
  }
  j["architectures"] = {architecture};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["max_position_embeddings"] = max_position_embeddings;
  j["hidden_act"] = hidden_act;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (family == Family::Decoder) {
    j["num_key_value_heads"] = num_key_value_heads;
    j["rms_norm_eps"] = rms_norm_eps;
    j["rope_theta"] = rope_theta;
    // Written where the source had it (transformers 5: rope_parameters), else rope_scaling.
    const std::string rope_key =
        j.contains("rope_parameters") && !j["rope_parameters"].is_null() ? "rope_parameters" : "rope_scaling";
    j[rope_key] = rope_scaling_json(*this, j.value(rope_key, json()), rope_key);
    if (explicit_head_dim > 0)
      j["head_dim"] = explicit_head_dim;
    else
      j.erase("head_dim");
    if (model_type != "qwen2") j["attention_bias"] = attention_bias;
  } else {
    j["layer_norm_eps"] = layer_norm_eps;
    j["type_vocab_size"] = type_vocab_size;
  }
  if (head == Head::SequenceClassification) {
    // transformers derives num_labels from id2label; keep the source labels when they fit.
    if (!j.contains("id2label") || !j["id2label"].is_object() ||
        j["id2label"].size() != static_cast<size_t>(num_labels)) {
      json id2label = json::object(), label2id = json::object();
      for (int64_t i = 0; i < num_labels; ++i) {
        id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
        label2id["LABEL_" + std::to_string(i)] = i;
      }
      j["id2label"] = id2label;
      j["label2id"] = label2id;
    }
    j.erase("num_labels");
  }
  // A token id list (Llama 3's eos) stays a list when its first entry is still ours.
  for (auto [key, id] : {std::pair<const char*, int64_t>{"bos_token_id", bos_token_id},
                         {"eos_token_id", eos_token_id},
                         {"pad_token_id", pad_token_id}}) {
    const bool list_matches = j.contains(key) && j[key].is_array() && !j[key].empty() &&
                              j[key].front().is_number_integer() && j[key].front().get<int64_t>() == id;
    if (list_matches) continue;
    if (id >= 0)
      j[key] = id;
    else if (j.contains(key))
      j[key] = nullptr;
  }
  if (j.contains("dtype") && !j.contains("torch_dtype"))
    j["dtype"] = torch_dtype;
  else
    j["torch_dtype"] = torch_dtype;
  // transformers writes config.json with indent 2 and sorted keys.
  return j.dump(2) + "\n";
}

}  // namespace gemkit
