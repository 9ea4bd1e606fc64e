// Evaluation inputs in the suite's formats (DATA.md): task item files
// (<domain>/tasks/<task>.<split>.jsonl with their headers from manifest.json) and held-out
// corpus files (<domain>/{validation,test}.jsonl). Every problem is an error naming the file,
// the line and the field. Torch-free.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gemkit::eval {

enum class TaskType { Classification, MultipleChoice };
const char* task_type_name(TaskType t);  // "classification", "multiple_choice"

struct TaskItem {
  std::string id;
  // Classification: text and the index of its label in Task::labels.
  std::string text;
  int32_t label = -1;
  // Multiple choice: context, choices and the 0-based answer.
  std::string context;
  std::vector<std::string> choices;
  int32_t answer = -1;
};

struct Task {
  std::string key;     // "law/spdx_osi" (domain/task), as in the manifest
  std::string domain;  // "law"; "cross" for the cross-domain task
  std::string name;    // "spdx_osi"
  std::string split;   // "test"
  std::string path;    // the item file
  TaskType type = TaskType::Classification;
  std::string metric;               // "macro_f1" | "accuracy"
  std::vector<std::string> labels;  // classification: the label list (header order)
  nlohmann::json baselines;         // from the header; null when there is no manifest
  std::vector<TaskItem> items;
};

// Reads one task file. `header` is the task's manifest entry (null: none; the type is then
// taken from the items' fields and the labels are the file's distinct labels, sorted).
// The key/domain/name come from the path: .../<domain>/tasks/<name>.<split>.jsonl.
Task read_task_file(const std::string& path, const nlohmann::json& header = nullptr);

// `spec`: a suite folder (with manifest.json: every task of the split), a domain folder
// (its manifest's tasks), or comma-separated task files. Headers are looked up in the
// nearest manifest.json (domain, then suite) when present. `max_items` > 0 keeps each task's
// first max_items items.
std::vector<Task> load_tasks(const std::string& spec, const std::string& split, int64_t max_items = 0);

struct Document {
  std::string id;
  std::string text;
  std::vector<int32_t> ids;  // token shards: the framed token ids (no text)
  // Token shards' chat examples: 1 where the token is scored (the answers, the shard's loss
  // mask), one per id; empty: every token after the first.
  std::vector<uint8_t> scored;
};

struct Corpus {
  std::string domain;  // from the record's "domain" field (shards: domain_names), else the folder name
  std::string path;
  std::string tokenizer_hash;  // token shards: the tokenizer of Document::ids; empty: text
  std::vector<Document> documents;
};

// Reads a corpus JSONL file ({"id", "text", "domain", "source"} per line).
Corpus read_corpus_file(const std::string& path, int64_t max_documents = 0);

// `spec`: a suite folder (every domain's <split>.jsonl, in manifest order when there is one),
// a domain folder, or comma-separated corpus files: JSONL, or .h5 token shards (one Corpus per
// domain; eval/shard_corpus.h), which are checked against the tokenizer of `model_path`.
std::vector<Corpus> load_corpora(const std::string& spec, const std::string& split, int64_t max_documents = 0,
                                 const std::string& model_path = "");

// Reads `path` and calls `line_fn(json, line_number)` per non-empty line; parse errors name
// file and line.
void for_each_jsonl(const std::string& path, const std::function<void(const nlohmann::json&, int64_t)>& line_fn);

}  // namespace gemkit::eval
