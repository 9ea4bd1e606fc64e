// config.json parsing: the supported architectures, defaults that differ per family, clear
// errors for missing / mistyped / inconsistent keys, and writing back over the source JSON.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/model_config.h"

using namespace gemkit;
using json = nlohmann::json;

namespace {

const char* kWhere = "/ckpt/config.json";

// Trimmed from SmolLM-135M's config.json (GQA, tied embeddings).
json llama_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 49152,
    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": null, "tie_word_embeddings": true,
    "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": null,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.0", "use_cache": true})");
}

// Trimmed from Qwen2.5-0.5B's config.json: no attention_bias key, yet q/k/v have biases.
json qwen2_config() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
    "use_sliding_window": false, "tie_word_embeddings": true, "bos_token_id": 151643,
    "eos_token_id": 151643, "torch_dtype": "bfloat16"})");
}

// Llama-3.2-1B's config.json: llama3 RoPE scaling, tied embeddings, an explicit head_dim
// (equal to hidden_size / heads) and a list of eos ids in the Instruct variant.
json llama32_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

json bert_config(const std::string& architecture) {
  json j = json::parse(R"({
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "intermediate_size": 3072,
    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 512,
    "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0,
    "position_embedding_type": "absolute"})");
  j["architectures"] = {architecture};
  return j;
}

ModelConfig parse(const json& j) { return ModelConfig::from_json_text(j.dump(), kWhere); }

void expect_error(const json& j, const std::vector<std::string>& parts) {
  try {
    parse(j);
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(kWhere), std::string::npos) << message;
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nmissing: " << part;
    return;
  }
  ADD_FAILURE() << "expected a gemkit::Error for " << j.dump();
}

}  // namespace

TEST(ModelConfig, Llama) {
  const ModelConfig c = parse(llama_config());
  EXPECT_EQ(c.family, Family::Decoder);
  EXPECT_EQ(c.head, Head::CausalLM);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim(), 64);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.pad_token_id, -1);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_STREQ(family_name(c.family), "decoder");
  EXPECT_STREQ(head_name(c.head), "causal-lm");

  json j = llama_config();
  j.erase("num_key_value_heads");
  j.erase("tie_word_embeddings");
  j.erase("rms_norm_eps");
  const ModelConfig d = parse(j);
  EXPECT_EQ(d.num_key_value_heads, 9);  // no GQA
  EXPECT_FALSE(d.tie_word_embeddings);  // LlamaConfig's default
  EXPECT_DOUBLE_EQ(d.rms_norm_eps, 1e-6);
}

TEST(ModelConfig, Qwen2HasAttentionBiasWithoutTheKey) {
  const ModelConfig c = parse(qwen2_config());
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.head_dim(), 64);
}

TEST(ModelConfig, BertHeadsFollowTheArchitecture) {
  const ModelConfig bare = parse(bert_config("BertModel"));
  EXPECT_EQ(bare.family, Family::Encoder);
  EXPECT_EQ(bare.head, Head::None);
  EXPECT_FALSE(bare.bert_prefix);
  EXPECT_EQ(bare.hidden_act, "gelu");
  EXPECT_EQ(bare.num_key_value_heads, 12);

  const ModelConfig mlm = parse(bert_config("BertForMaskedLM"));
  EXPECT_EQ(mlm.head, Head::MaskedLM);
  EXPECT_TRUE(mlm.bert_prefix);
  EXPECT_TRUE(mlm.tie_word_embeddings);
  EXPECT_STREQ(head_name(mlm.head), "masked-lm");

  json cls = bert_config("BertForSequenceClassification");
  cls["id2label"] = {{"0", "neg"}, {"1", "neutral"}, {"2", "pos"}};
  const ModelConfig c = parse(cls);
  EXPECT_EQ(c.head, Head::SequenceClassification);
  EXPECT_TRUE(c.bert_prefix);
  EXPECT_EQ(c.num_labels, 3);
  cls["num_labels"] = 5;
  EXPECT_EQ(parse(cls).num_labels, 5);
}

TEST(ModelConfig, ErrorsNameFileAndKey) {
  json j = llama_config();
  j.erase("hidden_size");
  expect_error(j, {"\"hidden_size\"", "not found"});

  j = llama_config();
  j["hidden_size"] = "576";
  expect_error(j, {"\"hidden_size\"", "expected an integer", "\"576\""});

  j = llama_config();
  j["num_attention_heads"] = 7;
  expect_error(j, {"\"num_attention_heads\"", "divisor of hidden_size 576", "got 7"});

  j = llama_config();
  j["num_key_value_heads"] = 2;
  expect_error(j, {"\"num_key_value_heads\"", "divisor of num_attention_heads 9", "got 2"});

  j = llama_config();
  j["num_hidden_layers"] = 0;
  expect_error(j, {"\"num_hidden_layers\"", "positive"});

  j = llama_config();
  j["architectures"] = {"MistralForCausalLM"};
  expect_error(j, {"\"architectures\"", "LlamaForCausalLM", "got MistralForCausalLM"});

  j = llama_config();
  j["model_type"] = "qwen2";
  expect_error(j, {"\"model_type\"", "expected \"llama\""});


  j = llama_config();
  j["tie_word_embeddings"] = 1;
  expect_error(j, {"\"tie_word_embeddings\"", "true or false"});

  j = bert_config("BertModel");
  j["position_embedding_type"] = "relative_key";
  expect_error(j, {"\"position_embedding_type\"", "relative_key"});

  try {
    ModelConfig::from_json_text("{\"architectures\": [", kWhere);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::string(kWhere) + ": invalid JSON"), std::string::npos) << e.what();
  }
  expect_error(json::array(), {"expected a JSON object"});
}

TEST(ModelConfig, ToJsonWritesOverTheSource) {
  json source = llama_config();
  source["eos_token_id"] = {0, 2};  // Llama 3 style list
  ModelConfig c = parse(source);
  EXPECT_EQ(c.eos_token_id, 0);
  c.num_hidden_layers = 4;
  c.torch_dtype = "float32";
  c.pad_token_id = 1;
  const json out = json::parse(c.to_json_text());
  EXPECT_EQ(out["num_hidden_layers"], 4);
  EXPECT_EQ(out["torch_dtype"], "float32");
  EXPECT_EQ(out["pad_token_id"], 1);
  EXPECT_EQ(out["eos_token_id"], json({0, 2}));      // list kept: its first entry is unchanged
  EXPECT_EQ(out["transformers_version"], "4.40.0");  // keys gemkit does not use survive
  EXPECT_EQ(out["use_cache"], true);
  const ModelConfig again = ModelConfig::from_json_text(out.dump(), "again");
  EXPECT_EQ(again.num_hidden_layers, 4);
  EXPECT_EQ(again.num_key_value_heads, 3);
  EXPECT_TRUE(again.tie_word_embeddings);

  // Qwen2 keeps its config free of attention_bias, as transformers writes it.
  EXPECT_FALSE(json::parse(parse(qwen2_config()).to_json_text()).contains("attention_bias"));

  // A changed label count rewrites id2label, from which transformers derives num_labels.
  json cls = bert_config("BertForSequenceClassification");
  cls["id2label"] = {{"0", "neg"}, {"1", "pos"}};
  ModelConfig b = parse(cls);
  b.num_labels = 3;
  const json bout = json::parse(b.to_json_text());
  EXPECT_EQ(bout["id2label"].size(), 3u);
  EXPECT_EQ(parse(bout).num_labels, 3);
}

TEST(ModelConfig, Llama32RopeScalingTied) {
  const ModelConfig c = parse(llama32_config());
  EXPECT_EQ(c.family, Family::Decoder);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim(), 64);
  EXPECT_EQ(c.explicit_head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_id, 128001);

  // Plain RoPE: null, absent, or an explicit "default".
  EXPECT_EQ(parse(llama_config()).rope_scaling.type, "default");
  json j = llama_config();
  j.erase("rope_scaling");
  EXPECT_EQ(parse(j).rope_scaling.type, "default");
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).rope_scaling.type, "default");
  EXPECT_DOUBLE_EQ(parse(j).rope_scaling.factor, 1.0);

  // Linear, under the pre-4.43 key "type".
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  const ModelConfig linear = parse(j);
  EXPECT_EQ(linear.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(linear.rope_scaling.factor, 2.0);

  // transformers 5 writes rope_parameters, with rope_theta inside.
  j = llama32_config();
  json params = j["rope_scaling"];
  params["rope_theta"] = 250000.0;
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = params;
  const ModelConfig v5 = parse(j);
  EXPECT_EQ(v5.rope_scaling.type, "llama3");
  EXPECT_EQ(v5.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(v5.rope_theta, 250000.0);
}

TEST(ModelConfig, RopeScalingErrors) {
  for (const char* type : {"yarn", "dynamic", "longrope", "mrope"}) {
    json j = llama32_config();
    j["rope_scaling"] = {{"rope_type", type}, {"factor", 4.0}, {"original_max_position_embeddings", 8192}};
    expect_error(j, {"\"rope_scaling.rope_type\"", "\"default\", \"linear\", \"llama3\"", type});
  }
  json j = llama32_config();
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  expect_error(j, {"\"rope_scaling.type\"", "\"llama3\"", "got \"yarn\""});

  j = llama32_config();
  j["rope_scaling"].erase("rope_type");
  expect_error(j, {"\"rope_scaling.rope_type\"", "not found"});

  j = llama32_config();
  j["rope_scaling"].erase("original_max_position_embeddings");
  expect_error(j, {"\"rope_scaling.original_max_position_embeddings\"", "not found"});

  j = llama32_config();
  j["rope_scaling"]["factor"] = "32";
  expect_error(j, {"\"rope_scaling.factor\"", "expected a number"});

  j = llama32_config();
  j["rope_scaling"]["factor"] = 0.0;
  expect_error(j, {"\"rope_scaling.factor\"", "positive"});

  j = llama32_config();
  j["rope_scaling"]["high_freq_factor"] = 1.0;
  expect_error(j, {"\"rope_scaling.high_freq_factor\"", "more than low_freq_factor"});

  j = llama32_config();
  j["rope_scaling"] = {{"type", "linear"}};
  expect_error(j, {"\"rope_scaling.factor\"", "not found"});

  j = llama32_config();
  j["rope_scaling"] = 32.0;
  expect_error(j, {"\"rope_scaling\"", "expected an object or null"});

  j = llama32_config();
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"rope_theta", 1e4}};
  expect_error(j, {"\"rope_parameters.rope_type\"", "got \"yarn\""});
}

TEST(ModelConfig, ExplicitHeadDim) {
  // Decoder: head_dim sizes q/k/v on its own (here 4 x 128 against hidden_size 256).
  json j = llama_config();
  j["hidden_size"] = 256;
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 2;
  j["head_dim"] = 128;
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.head_dim(), 128);
  EXPECT_EQ(c.explicit_head_dim, 128);
  EXPECT_EQ(json::parse(c.to_json_text())["head_dim"], 128);
  EXPECT_EQ(parse(json::parse(c.to_json_text())).head_dim(), 128);

  // hidden_size need not split into the heads when head_dim is given.
  j["num_attention_heads"] = 3;
  j["num_key_value_heads"] = 1;
  EXPECT_EQ(parse(j).head_dim(), 128);

  j["head_dim"] = 63;
  expect_error(j, {"\"head_dim\"", "even", "63"});
  j["head_dim"] = 0;
  expect_error(j, {"\"head_dim\"", "positive"});

  // Without head_dim the heads split hidden_size.
  EXPECT_EQ(parse(llama_config()).explicit_head_dim, 0);
  EXPECT_EQ(parse(qwen2_config()).head_dim(), 64);

  // BERT has no head_dim of its own.
  j = bert_config("BertModel");
  j["head_dim"] = 32;
  expect_error(j, {"\"head_dim\"", "hidden_size / num_attention_heads = 64", "got 32"});
  j["head_dim"] = 64;
  EXPECT_EQ(parse(j).head_dim(), 64);
}

TEST(ModelConfig, RopeScalingRoundTrips) {
  ModelConfig c = parse(llama32_config());
  c.rope_scaling.factor = 8.0;
  const json out = json::parse(c.to_json_text());
  EXPECT_EQ(out["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(out["rope_scaling"]["factor"], 8.0);
  EXPECT_EQ(out["rope_scaling"]["original_max_position_embeddings"], 8192);
  EXPECT_EQ(out["head_dim"], 64);
  const ModelConfig again = parse(out);
  EXPECT_EQ(again.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(again.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(again.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(again.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(again.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(again.rope_theta, 500000.0);

  // Switching to another type writes a fresh object; plain RoPE writes null.
  c.rope_scaling = RopeScaling();
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 2.0;
  const json linear = json::parse(c.to_json_text());
  EXPECT_EQ(linear["rope_scaling"], json({{"rope_type", "linear"}, {"factor", 2.0}}));
  EXPECT_EQ(parse(linear).rope_scaling.type, "linear");
  c.rope_scaling = RopeScaling();
  EXPECT_TRUE(json::parse(c.to_json_text())["rope_scaling"].is_null());
  EXPECT_TRUE(json::parse(parse(llama_config()).to_json_text())["rope_scaling"].is_null());

  // The legacy "type" key is kept in step with rope_type.
  json legacy = llama_config();
  legacy["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ModelConfig l = parse(legacy);
  l.rope_scaling.factor = 3.0;
  const json lout = json::parse(l.to_json_text());
  EXPECT_EQ(lout["rope_scaling"]["type"], "linear");
  EXPECT_EQ(lout["rope_scaling"]["rope_type"], "linear");
  EXPECT_DOUBLE_EQ(parse(lout).rope_scaling.factor, 3.0);

  // transformers 5 layout: written back to rope_parameters, rope_theta inside.
  json v5 = llama32_config();
  v5["rope_parameters"] = v5["rope_scaling"];
  v5["rope_parameters"]["rope_theta"] = 500000.0;
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  ModelConfig p = parse(v5);
  p.rope_theta = 1e6;
  const json pout = json::parse(p.to_json_text());
  EXPECT_FALSE(pout.contains("rope_scaling"));
  EXPECT_EQ(pout["rope_parameters"]["rope_theta"], 1e6);
  EXPECT_EQ(pout["rope_parameters"]["rope_type"], "llama3");
  EXPECT_DOUBLE_EQ(parse(pout).rope_theta, 1e6);
}
