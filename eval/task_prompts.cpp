#include "eval/task_prompts.h"

namespace gemkit::eval {

std::string chat_question(const Task& task, const TaskItem& item) {
  std::string q;
  if (task.type == TaskType::MultipleChoice) {
    q = item.context + "\n\nChoices:\n";
    for (const std::string& c : item.choices) q += "- " + c + "\n";
    return q + "\nAnswer with the correct choice.";
  }
  q = item.text + "\n\nLabels: ";
  for (size_t i = 0; i < task.labels.size(); ++i) q += (i ? ", " : "") + task.labels[i];
  return q + "\n\nAnswer with the label that fits the text.";
}

std::string chat_answer(const Task& task, const TaskItem& item) {
  return task.type == TaskType::MultipleChoice ? item.choices.at(size_t(item.answer)) : task.labels.at(size_t(item.label));
}

std::vector<ChatMessage> task_conversation(const Task& task, const TaskItem& item) {
  return {{"user", chat_question(task, item)}, {"assistant", chat_answer(task, item)}};
}

ScoreRequest TaskPrompts::request(const Tokenizer& tok, const Task& task, const TaskItem& item,
                                  const std::string& answer) const {
  if (!chat_) {
    const std::string prompt = task.type == TaskType::MultipleChoice ? mc_prompt(item.context) : label_prompt(item.text);
    return make_request(tok, prompt, " " + answer);
  }
  // The template writes BOS where the model expects it; none is added on top.
  return make_request(tok, chat_->render({{"user", chat_question(task, item)}}, /*add_generation_prompt=*/true),
                      answer + chat_->end_of_turn(), /*add_bos=*/false);
}

double TaskPrompts::answer_bytes(const std::string& answer) const {
  return double(answer.size() + (chat_ ? chat_->end_of_turn().size() : 1));
}

}  // namespace gemkit::eval
