#include "eval/classification.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/error.h"
#include "eval/metrics.h"
#include "eval/multiple_choice.h"
#include "eval/progress.h"
#include "eval/requests.h"
#include "eval/scorer.h"

namespace gemkit::eval {

std::vector<int32_t> head_label_map(const std::string& config_json, int64_t num_labels,
                                    const std::vector<std::string>& task_labels, const std::string& where) {
  std::vector<int32_t> map(size_t(num_labels), -1);
  nlohmann::json j = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("id2label") && j["id2label"].is_object()) {
    bool all_known = !j["id2label"].empty();
    std::vector<int32_t> by_name(size_t(num_labels), -1);
    for (const auto& [id, name] : j["id2label"].items()) {
      int64_t k = -1;
      try {
        k = std::stoll(id);
      } catch (const std::exception&) {
        fail(where, "id2label key \"" + id + "\" is not a class id");
      }
      if (k < 0 || k >= num_labels || !name.is_string()) {
        all_known = false;
        continue;
      }
      auto it = std::find(task_labels.begin(), task_labels.end(), name.get<std::string>());
      if (it == task_labels.end()) all_known = false;
      else by_name[size_t(k)] = int32_t(it - task_labels.begin());
    }
    // A fine-tuned head names its classes; HF's default names (LABEL_0, ...) mean index order.
    if (all_known) return by_name;
  }
  if (num_labels != int64_t(task_labels.size()))
    fail(where, "the classification head has " + std::to_string(num_labels) + " classes, the task " +
                    std::to_string(task_labels.size()) + " labels, and id2label does not name the task's labels");
  for (int64_t k = 0; k < num_labels; ++k) map[size_t(k)] = int32_t(k);
  return map;
}

Result classification_result(const Task& task, const std::string& method, const std::vector<int32_t>& gold,
                             const std::vector<int32_t>& pred, const BootstrapOptions& boot) {
  Result r;
  r.kind = "classification";
  r.key = task.key;
  r.domain = task.domain;
  r.method = method;
  r.primary = task.metric;
  r.items = int64_t(gold.size());
  r.baselines = task.baselines;
  const int32_t classes = int32_t(task.labels.size());
  r.per_item = {{"gold", gold}, {"pred", pred}, {"num_classes", classes}};
  r.figures.push_back({"macro_f1", bootstrap(gold.size(), [&](const std::vector<size_t>& idx) {
                         return macro_f1(gold, pred, classes, idx);
                       }, boot)});
  r.figures.push_back({"accuracy", bootstrap(gold.size(), [&](const std::vector<size_t>& idx) {
                         return accuracy(gold, pred, idx);
                       }, boot)});
  return r;
}

std::vector<std::vector<double>> score_label_words(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                                                   const TaskPrompts& prompts) {
  if (task.type != TaskType::Classification) fail(task.path, "not a classification task");
  std::vector<ScoreRequest> requests;
  for (const TaskItem& item : task.items) {
    for (const std::string& label : task.labels) requests.push_back(prompts.request(tok, task, item, label));
  }
  Progress progress(task.key, int64_t(task.items.size()));
  const int64_t L = int64_t(task.labels.size());
  const std::vector<ContinuationScore> scores =
      scorer.score(requests, [&](int64_t n) { progress.update(n / L); });
  progress.finish();
  std::vector<std::vector<double>> out(task.items.size(), std::vector<double>(size_t(L)));
  for (size_t i = 0; i < task.items.size(); ++i)
    for (size_t l = 0; l < size_t(L); ++l) out[i][l] = scores[i * size_t(L) + l].logprob;
  return out;
}

Result evaluate_label_words(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                            const BootstrapOptions& boot, const TaskPrompts& prompts) {
  const auto scores = score_label_words(scorer, tok, task, prompts);
  std::vector<int32_t> gold, pred;
  for (size_t i = 0; i < task.items.size(); ++i) {
    gold.push_back(task.items[i].label);
    pred.push_back(argmax(scores[i]));
  }
  return classification_result(task, std::string("label_words") + prompts.method_suffix(), gold, pred, boot);
}

Result evaluate_classification_head(const Scorer& scorer, const Tokenizer& tok, const Task& task,
                                    const std::vector<int32_t>& label_map, const BootstrapOptions& boot) {
  std::vector<std::vector<int32_t>> inputs;
  for (const TaskItem& item : task.items) inputs.push_back(tok.encode(item.text, /*add_special=*/true));
  Progress progress(task.key, int64_t(inputs.size()));
  const auto logits = scorer.class_logits(inputs, [&](int64_t n) { progress.update(n); });
  progress.finish();
  std::vector<int32_t> gold, pred;
  for (size_t i = 0; i < task.items.size(); ++i) {
    gold.push_back(task.items[i].label);
    const auto& l = logits[i];
    const size_t k = size_t(std::max_element(l.begin(), l.end()) - l.begin());
    pred.push_back(k < label_map.size() ? label_map[k] : -1);
  }
  return classification_result(task, "head", gold, pred, boot);
}

}  // namespace gemkit::eval
