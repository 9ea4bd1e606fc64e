#include "data/chat_examples.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

bool is_chat_record(const nlohmann::json& record) {
  return record.is_object() && (record.contains("messages") || (record.contains("prompt") && record.contains("completion")));
}

std::vector<ChatMessage> parse_chat_record(const nlohmann::json& record, const std::string& where) {
  std::vector<ChatMessage> messages;
  if (record.contains("messages")) {
    const nlohmann::json& list = record["messages"];
    if (!list.is_array() || list.empty()) fail(where, "\"messages\" must be a non-empty list of {\"role\", \"content\"}");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string at = where + ": messages[" + std::to_string(i) + "]";
      const nlohmann::json& m = list[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        fail(at, "expected an object with a string \"role\"");
      if (!m.contains("content") || !m["content"].is_string()) fail(at, "expected a string \"content\"");
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant")
        fail(at, "unknown role \"" + role + "\" (expected system, user or assistant)");
      messages.push_back({role, m["content"].get<std::string>()});
    }
  } else {
    for (const char* key : {"prompt", "completion"})
      if (!record[key].is_string()) fail(where, std::string("\"") + key + "\" must be a string");
    messages = {{"user", record["prompt"].get<std::string>()}, {"assistant", record["completion"].get<std::string>()}};
  }
  bool answered = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "assistant") continue;
    if (messages[i].content.find_first_not_of(" \t\r\n") == std::string::npos)
      fail(where + ": messages[" + std::to_string(i) + "]", "empty assistant answer (nothing to train on)");
    answered = true;
  }
  if (!answered) fail(where, "no assistant message (nothing to train on)");
  return messages;
}

ChatTokens encode_chat(const Tokenizer& tokenizer, const ChatTemplate& chat, const std::vector<ChatMessage>& messages,
                       const std::string& where) {
  const ChatTemplate::Rendered r = chat.render_answers(messages);
  ChatTokens out;
  out.ids = tokenizer.encode(r.text, /*add_special=*/false);
  out.loss_mask.assign(out.ids.size(), 0);
  // Each token's bytes, from decoding it alone: a lossless (byte-level) tokenizer's tokens add
  // up to the text, which gives every token its byte span.
  size_t at = 0, answer = 0;
  for (size_t i = 0; i < out.ids.size(); ++i) {
    const size_t begin = at;
    at += tokenizer.decode({out.ids[i]}, /*skip_special=*/false).size();
    while (answer < r.answers.size() && r.answers[answer].second <= begin) ++answer;
    // As transformers' return_assistant_tokens_mask: a token that overlaps an answer is trained,
    // also one that begins in the role header's newline and runs into the answer.
    out.loss_mask[i] = answer < r.answers.size() && begin < r.answers[answer].second && at > r.answers[answer].first;
  }
  if (at != r.text.size())
    fail(where, "the tokenizer does not reproduce the rendered conversation byte for byte (" + std::to_string(at) +
                    " of " + std::to_string(r.text.size()) + " bytes), so answer tokens cannot be located");
  return out;
}

}  // namespace gemkit
