// Classification accuracy and macro-F1 (over the task's label list), two ways:
//  - label words (causal LMs): each label name is scored as the continuation " {label}" of
//    "{text}\nLabel:" (eval/requests.h); the prediction is the label with the highest summed
//    log-likelihood;
//  - the classification head (*ForSequenceClassification): argmax of the logits of the
//    tokenized text, class ids mapped to task labels through config.json's id2label when its
//    names are the task's labels, else by index order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/bootstrap.h"
#include "eval/result.h"
#include "eval/task_prompts.h"
#include "eval/tasks.h"
#include "tokenizers/tokenizer.h"

namespace gemkit::eval {

class Scorer;

// Class id -> task label index (-1: a head class the task does not have). `config_json` is the
// model's config.json text; `where` names it in errors.
std::vector<int32_t> head_label_map(const std::string& config_json, int64_t num_labels,
                                    const std::vector<std::string>& task_labels, const std::string& where);

// Figures accuracy and macro_f1 from gold and predicted label indices.
Result classification_result(const Task& task, const std::string& method, const std::vector<int32_t>& gold,
                             const std::vector<int32_t>& pred, const BootstrapOptions& boot);

// [item][label] summed log-likelihood of " {label}" after "{text}\nLabel:".
std::vector<std::vector<double>> score_label_words(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                                                   const TaskPrompts& prompts = TaskPrompts());

Result evaluate_label_words(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                            const BootstrapOptions& boot, const TaskPrompts& prompts = TaskPrompts());

Result evaluate_classification_head(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                                    const std::vector<int32_t>& label_map, const BootstrapOptions& boot);

}  // namespace gemkit::eval
