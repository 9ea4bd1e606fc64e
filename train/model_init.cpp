#include "train/model_init.h"

#include <nlohmann/json.hpp>

#include <string>

#include "core/error.h"

namespace gemkit {

ModelConfig model_init_config(const Recipe& r, const Tokenizer& tok) {
  nlohmann::json j;
  const std::string arch = r.get_string("model.init.architecture");
  j["architectures"] = {arch};
  j["vocab_size"] = r.has("model.init.vocab_size") ? r.get_int("model.init.vocab_size") : int64_t(tok.vocab_size());
  if (j["vocab_size"].get<int64_t>() < tok.vocab_size())
    fail("model.init.vocab_size", "expected at least the tokenizer's " + std::to_string(tok.vocab_size()) +
                                      " tokens, got " + std::to_string(j["vocab_size"].get<int64_t>()));
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "max_position_embeddings"})
    j[key] = r.get_int(std::string("model.init.") + key);
  j["num_key_value_heads"] = r.has("model.init.num_key_value_heads") ? r.get_int("model.init.num_key_value_heads")
                                                                     : r.get_int("model.init.num_attention_heads");
  j["tie_word_embeddings"] = r.get_bool("model.init.tie_word_embeddings");
  const bool decoder = arch.rfind("Bert", 0) != 0;
  if (decoder) j["rope_theta"] = r.get_float("model.init.rope_theta");
  if (arch == "BertForSequenceClassification") j["num_labels"] = r.get_int("model.init.num_labels");
  const SpecialTokens& s = tok.special();
  if (s.bos >= 0) j["bos_token_id"] = s.bos;
  if (s.eos >= 0) j["eos_token_id"] = s.eos;
  if (s.pad >= 0) j["pad_token_id"] = s.pad;
  j["torch_dtype"] = "float32";
  // ModelConfig's parser validates (head counts divide, positive sizes, ...).
  return ModelConfig::from_json_text(j.dump(2), "model init (" + (r.source().empty() ? "flags" : r.source()) + ")");
}

}  // namespace gemkit
