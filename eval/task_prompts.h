// How a task item is put to a causal LM (eval.task_format):
//  - "text" (base models, as lm-evaluation-harness does): running text, the prompts of
//    eval/requests.h: "{context}\nAnswer:" + " {choice}", "{text}\nLabel:" + " {label}";
//  - "chat" (instruct models): the item's question (chat_question) is a user turn rendered with
//    the checkpoint's chat template and the assistant header, and each candidate answer is
//    scored as the assistant's reply followed by its end-of-turn marker, the tokens an instruct
//    model produces when it answers.
// The chat wording also turns a task's training items into chat examples (task_conversation,
// `gemkit data task-chat`), so an instruct model is trained on the questions it is tested with
// (on other items: the test split is never converted).
#pragma once
#include <string>
#include <vector>

#include "eval/requests.h"
#include "eval/tasks.h"
#include "tokenizers/chat_template.h"

namespace gemkit::eval {

// The user turn: a multiple-choice item's context with its choices listed, or a classification
// item's text with the label list, each ending in an instruction to answer with one of them.
std::string chat_question(const Task& task, const TaskItem& item);
// The correct answer's text: the choice, or the label name.
std::string chat_answer(const Task& task, const TaskItem& item);
// The item as a conversation: the question and the correct answer.
std::vector<ChatMessage> task_conversation(const Task& task, const TaskItem& item);

class TaskPrompts {
 public:
  TaskPrompts() = default;  // running text
  explicit TaskPrompts(const ChatTemplate& chat) : chat_(&chat) {}

  bool is_chat() const { return chat_ != nullptr; }
  // Scores candidate `answer` (a choice, a label name) of `item`.
  ScoreRequest request(const Tokenizer& tok, const Task& task, const TaskItem& item, const std::string& answer) const;
  // UTF-8 bytes of what request() scores for `answer` (the per-byte normalisation).
  double answer_bytes(const std::string& answer) const;
  const char* method_suffix() const { return chat_ ? "_chat" : ""; }

 private:
  const ChatTemplate* chat_ = nullptr;
};

}  // namespace gemkit::eval
