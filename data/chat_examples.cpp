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
  size_t at = 0;
  const auto piece = [&](size_t end, uint8_t mask) {
    if (end == at) return;
    const std::vector<int32_t> ids = tokenizer.encode(r.text.substr(at, end - at), /*add_special=*/false);
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.loss_mask.insert(out.loss_mask.end(), ids.size(), mask);
    at = end;
  };
  for (const auto& [begin, end] : r.answers) {
    piece(begin, 0);
    piece(end, 1);
  }
  piece(r.text.size(), 0);
  if (out.ids != tokenizer.encode(r.text, /*add_special=*/false))
    fail(where, "the tokenizer merges text across an answer's boundary, so answer tokens cannot be told apart");
  return out;
}

}  // namespace gemkit
