// libFuzzer target: `gemkit import gguf` (import/gguf_import.h: architecture and size keys ->
// config.json, every tensor dequantized and un-permuted -> model.safetensors, tokenizer.ggml.* ->
// Hugging Face tokenizer files). A file that imports gives a folder gemkit loads back whole:
// config.json reads, every tensor of model.safetensors has the embedding's width or a shape
// the config implies, and the tokenizer written there encodes the probe text into ids that
// index the model's embedding table (a tokenizer larger than the table would crash a model).
#include <filesystem>

#include "core/error.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "import/gguf_import.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_probe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "model.gguf");
  const std::string out = fuzz::scratch_dir() + "/imported";
  GgufImportOptions options;
  options.force = true;
  try {
    import_gguf(path, out, options);
  } catch (const Error&) {
    for (const auto& e : std::filesystem::directory_iterator(fuzz::scratch_dir()))
      fuzz::require(e.path().filename().string().rfind("imported.", 0) != 0,
                    "a failed import leaves no temporary folder behind");
    return 0;
  }
  // Outside the try: an imported folder that does not load is a finding, not an input error.
  const ModelConfig c = ModelConfig::load(out + "/config.json");
  const SafetensorsFile weights(out + "/model.safetensors");
  const TensorView& embed = weights.at("model.embed_tokens.weight");
  fuzz::require(embed.shape == std::vector<int64_t>({c.vocab_size, c.hidden_size}),
                "the embedding is [vocab_size, hidden_size]");
  for (const TensorView& t : weights.tensors())
    fuzz::require(!t.shape.empty() && (t.shape.back() == c.hidden_size || t.shape.back() == c.intermediate_size ||
                                       t.shape.back() == c.num_attention_heads * c.head_dim() ||
                                       (t.shape.size() == 1 && t.shape[0] == c.num_key_value_heads * c.head_dim())),
                  "every tensor's inner size comes from the config");
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(out);
  fuzz::probe_tokenizer(*tok);
  for (bool special : {true, false})
    for (int32_t id : tok->encode(fuzz::kProbeText, special))
      fuzz::require(id < c.vocab_size, "the tokenizer's ids index the embedding table");
  return 0;
}
