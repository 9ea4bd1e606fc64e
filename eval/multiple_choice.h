// Multiple-choice accuracy of a causal LM: each choice is scored as the continuation
// " {choice}" of "{context}\nAnswer:" (eval/requests.h), and the prediction is the choice with
// the highest summed log-likelihood ("accuracy"), or with the highest log-likelihood per UTF-8
// byte of " {choice}" ("accuracy_norm"). Per byte rather than per token so that the
// normalisation does not depend on the tokenizer, and longer choices are not penalised for
// their length.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/bootstrap.h"
#include "eval/result.h"
#include "eval/task_prompts.h"
#include "eval/tasks.h"
#include "tokenizers/tokenizer.h"

namespace gemkit::eval {

class Scorer;

struct ChoiceScores {
  std::vector<std::vector<double>> logprob;  // [item][choice] summed log-likelihood
  std::vector<std::vector<double>> bytes;    // [item][choice] UTF-8 bytes of " {choice}"
};

ChoiceScores score_choices(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                           const TaskPrompts& prompts = TaskPrompts());

// Index of the largest value (the first one on ties).
int32_t argmax(const std::vector<double>& v);

Result evaluate_multiple_choice(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                                const BootstrapOptions& boot, const TaskPrompts& prompts = TaskPrompts());

}  // namespace gemkit::eval
