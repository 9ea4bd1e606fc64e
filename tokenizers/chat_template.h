// Chat templates without a Jinja interpreter: as llama.cpp does (llama_chat_detect_template,
// llm_chat_apply_template), the family of a checkpoint's template is recognised by marker
// substrings and rendered by plain code that produces the same text as transformers'
// apply_chat_template(messages, tokenize=False). Families:
//   ChatML  (<|im_start|>: SmolLM2, Qwen2, Qwen2.5): "<|im_start|>ROLE\nCONTENT<|im_end|>\n" per
//           message, with the default system message that the template writes when the first
//           message is not a system one (its text taken from the template's own literal);
//   Llama 3 (<|start_header_id|>): BOS, then "<|start_header_id|>ROLE<|end_header_id|>\n\n"
//           CONTENT (trimmed) "<|eot_id|>" per message.
// Anything else (Llama 3.1's dated system preamble, Qwen3's <think> handling, other formats) is
// refused with an error naming the file and key, never rendered approximately.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace gemkit {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Family { ChatML, Llama3 };

  // `source` is the Jinja text; `bos_token` the tokenizer's BOS text (Llama 3 writes it);
  // `where` names the file and key in errors ("DIR/tokenizer_config.json: chat_template").
  ChatTemplate(const std::string& source, std::string bos_token, std::string where);
  // A checkpoint folder's template: DIR/chat_template.jinja (transformers 4.43+ saves it so),
  // else tokenizer_config.json "chat_template" (a string, or a list of {name, template} whose
  // "default" is used); bos_token from tokenizer_config.json.
  static ChatTemplate from_folder(const std::string& dir);

  Family family() const { return family_; }
  // The conversation as one prompt string; add_generation_prompt appends the assistant header.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  // The rendered conversation with, for each assistant message, the byte span [begin, end) of
  // what the model is trained to write: the message as the template writes it and the
  // end-of-turn marker after it (so that the model learns to stop), not the role header.
  struct Rendered {
    std::string text;
    std::vector<std::pair<size_t, size_t>> answers;
  };
  Rendered render_answers(const std::vector<ChatMessage>& messages) const;
  // The token text that closes a turn ("<|im_end|>", "<|eot_id|>"): generation stops there.
  const std::string& end_of_turn() const { return end_of_turn_; }
  // ChatML's default system message ("" when the template has none).
  const std::string& default_system() const { return default_system_; }

 private:
  Family family_ = Family::ChatML;
  std::string bos_token_, where_, end_of_turn_, default_system_;
};

}  // namespace gemkit
