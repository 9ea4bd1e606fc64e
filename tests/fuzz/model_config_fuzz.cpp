// libFuzzer target: a checkpoint's config.json (ModelConfig::from_json_text: architecture,
// sizes, RoPE scaling, token ids). An accepted config has positive sizes and writes back as
// JSON that reads again to the same config.
#include "core/error.h"
#include "formats/model_config.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  ModelConfig c;
  try {
    c = ModelConfig::from_json_text(std::string(reinterpret_cast<const char*>(data), size), "config.json");
  } catch (const Error&) {
    return 0;
  }
  // Outside the try: a written config that does not read again is a finding, not an input error.
  fuzz::require(c.vocab_size > 0 && c.hidden_size > 0 && c.num_hidden_layers > 0 && c.num_attention_heads > 0,
                "an accepted config has positive sizes");
  const std::string text = c.to_json_text();
  fuzz::require(ModelConfig::from_json_text(text, "round trip").to_json_text() == text,
                "an accepted config survives a write and read");
  return 0;
}
