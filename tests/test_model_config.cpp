// config.json parsing: the supported architectures, defaults that differ per family, clear
// errors for missing / mistyped / inconsistent keys, and writing back over the source JSON.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/model_config.h"

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
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}};
  expect_error(j, {"\"rope_scaling\"", "not supported"});

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
