// Chat-format training examples: a JSONL record holding a conversation becomes token ids with a
// loss mask that is 1 on what the model should learn to write (the assistant's answers and
// their end-of-turn marker, tokenizers/chat_template.h render_answers) and 0 elsewhere (system
// and user turns, role headers). Torch-free.
//
// Records (one per JSONL line):
//   {"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}
//   {"prompt": "...", "completion": "..."}   (a user turn and the assistant's answer)
// Every conversation needs at least one assistant answer, and no answer may be empty.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizers/chat_template.h"

namespace gemkit {

class Tokenizer;

// Whether a parsed JSONL record is a chat example (has "messages", or "prompt" and "completion").
bool is_chat_record(const nlohmann::json& record);

// The record's conversation. Throws gemkit::Error naming `where` (file:line) and the message
// index for an unknown role, a non-string content, no assistant answer or an empty one.
std::vector<ChatMessage> parse_chat_record(const nlohmann::json& record, const std::string& where);

struct ChatTokens {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss_mask;  // one per id: 1 on answer tokens
};

// The conversation rendered with `chat` and tokenized as one text (special tokens such as
// <|im_start|> recognised, no BOS/EOS added beyond what the template writes). A token is an
// answer token when its bytes overlap an answer's span, as in transformers'
// return_assistant_tokens_mask; the spans come from each token decoded alone, which needs a
// tokenizer that reproduces the text byte for byte (byte-level BPE: SmolLM2, Qwen2, Llama 3).
// Otherwise an error naming `where`, never a guessed mask.
ChatTokens encode_chat(const Tokenizer& tokenizer, const ChatTemplate& chat, const std::vector<ChatMessage>& messages,
                       const std::string& where);

}  // namespace gemkit
