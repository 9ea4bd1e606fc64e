// libFuzzer target: an evaluation task file (eval::read_task_file: one JSON item per line),
// read without a manifest header (type and labels taken from the items) and with a
// classification header and a multiple-choice one. An accepted task has items whose label or
// answer indexes its labels or choices.
#include "core/error.h"
#include "eval/tasks.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "law/tasks/spdx_osi.test.jsonl");
  static const nlohmann::json headers[] = {
      nullptr, {{"type", "classification"}, {"metric", "macro_f1"}, {"labels", {"yes", "no"}}},
      {{"type", "multiple_choice"}, {"metric", "accuracy"}}};
  for (const nlohmann::json& header : headers) {
    try {
      const eval::Task task = eval::read_task_file(path, header);
      for (const eval::TaskItem& item : task.items) {
        if (task.type == eval::TaskType::Classification)
          fuzz::require(item.label >= 0 && size_t(item.label) < task.labels.size(), "labels index the label list");
        else
          fuzz::require(item.answer >= 0 && size_t(item.answer) < item.choices.size(), "answers index the choices");
      }
    } catch (const Error&) {
    }
  }
  return 0;
}
