// libFuzzer target: a checkpoint's tokenizer_config.json as ChatTemplate::from_folder reads it
// ("chat_template" as a string or a list of {name, template}, "bos_token"), then the template
// family detection and rendering of a short conversation. An accepted template renders every
// message's content into the prompt.
#include "core/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "tokenizers/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  fuzz::write_input(data, size, "tokenizer_config.json");
  try {
    const ChatTemplate t = ChatTemplate::from_folder(fuzz::scratch_dir());
    const std::vector<ChatMessage> messages = {
        {"system", "Be brief."}, {"user", "What is GGUF?"}, {"assistant", "A file format."}, {"user", "Why?"}};
    for (bool generation_prompt : {false, true}) {
      const std::string prompt = t.render(messages, generation_prompt);
      for (const ChatMessage& m : messages)
        fuzz::require(prompt.find(m.content) != std::string::npos, "every message is in the prompt");
    }
  } catch (const Error&) {
  }
  return 0;
}
