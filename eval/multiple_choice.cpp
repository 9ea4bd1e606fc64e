#include "eval/multiple_choice.h"

#include "core/error.h"
#include "eval/metrics.h"
#include "eval/progress.h"
#include "eval/requests.h"
#include "eval/scorer.h"

namespace gemkit::eval {

int32_t argmax(const std::vector<double>& v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[size_t(best)]) best = int32_t(i);
  return best;
}

ChoiceScores score_choices(const Scorer& scorer, const Tokenizer& tok, const Task& task, const TaskPrompts& prompts) {
  if (task.type != TaskType::MultipleChoice) fail(task.path, "not a multiple-choice task");
  std::vector<ScoreRequest> requests;
  ChoiceScores out;
  for (const TaskItem& item : task.items) {
    std::vector<double> bytes;
    for (const std::string& choice : item.choices) {
      requests.push_back(prompts.request(tok, task, item, choice));
      bytes.push_back(prompts.answer_bytes(choice));
    }
    out.bytes.push_back(bytes);
  }
  Progress progress(task.key, int64_t(task.items.size()));
  const size_t per_item = task.items.empty() ? 1 : task.items.front().choices.size();
  const std::vector<ContinuationScore> scores =
      scorer.score(requests, [&](int64_t n) { progress.update(n / int64_t(per_item)); });
  progress.finish();
  size_t k = 0;
  for (const TaskItem& item : task.items) {
    std::vector<double> lp;
    for (size_t c = 0; c < item.choices.size(); ++c) lp.push_back(scores[k++].logprob);
    out.logprob.push_back(lp);
  }
  return out;
}

Result evaluate_multiple_choice(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                                const BootstrapOptions& boot, const TaskPrompts& prompts) {
  const ChoiceScores s = score_choices(scorer, tok, task, prompts);
  std::vector<int32_t> gold, pred, pred_norm;
  for (size_t i = 0; i < task.items.size(); ++i) {
    gold.push_back(task.items[i].answer);
    pred.push_back(argmax(s.logprob[i]));
    std::vector<double> norm(s.logprob[i].size());
    for (size_t c = 0; c < norm.size(); ++c) norm[c] = s.logprob[i][c] / s.bytes[i][c];
    pred_norm.push_back(argmax(norm));
  }
  Result r;
  r.kind = "multiple_choice";
  r.key = task.key;
  r.domain = task.domain;
  r.method = std::string("loglik") + prompts.method_suffix();
  r.primary = "accuracy";
  r.items = int64_t(task.items.size());
  r.baselines = task.baselines;
  r.per_item = {{"gold", gold}, {"pred", pred}};
  r.figures.push_back({"accuracy", bootstrap(gold.size(), [&](const std::vector<size_t>& idx) {
                         return accuracy(gold, pred, idx);
                       }, boot)});
  r.figures.push_back({"accuracy_norm", bootstrap(gold.size(), [&](const std::vector<size_t>& idx) {
                         return accuracy(gold, pred_norm, idx);
                       }, boot)});
  return r;
}

}  // namespace gemkit::eval
