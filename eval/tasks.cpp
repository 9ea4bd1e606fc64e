#include "eval/tasks.h"

#include "eval/shard_corpus.h"

#include <algorithm>
#include <functional>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace fs = std::filesystem;

namespace gemkit::eval {
namespace {

std::string at_line(const std::string& path, int64_t line) { return path + ":" + std::to_string(line); }

const nlohmann::json& field(const nlohmann::json& j, const char* name, nlohmann::json::value_t type,
                            const std::string& where) {
  if (!j.contains(name)) fail(where, std::string("missing field \"") + name + "\"");
  const nlohmann::json& v = j.at(name);
  const bool ok = type == nlohmann::json::value_t::number_integer ? v.is_number_integer() : v.type() == type;
  if (!ok) fail(where, std::string("field \"") + name + "\" must be " +
                           (type == nlohmann::json::value_t::string            ? "a string"
                            : type == nlohmann::json::value_t::array           ? "an array"
                            : type == nlohmann::json::value_t::number_integer  ? "an integer"
                                                                               : "an object") +
                           ", got " + v.type_name());
  return v;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ','))
    if (!part.empty()) out.push_back(part);
  return out;
}

nlohmann::json read_json_file(const std::string& path) {
  try {
    return nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
}

// The manifest header of task `key` near a task file: the domain's manifest.json, else the
// suite's. Null when neither has it.
nlohmann::json find_header(const fs::path& task_file, const std::string& domain, const std::string& name) {
  const fs::path domain_dir = task_file.parent_path().parent_path();
  // The domain manifest keys tasks by name, the suite manifest by domain/name.
  const std::pair<fs::path, std::string> places[] = {{domain_dir / "manifest.json", name},
                                                     {domain_dir.parent_path() / "manifest.json", domain + "/" + name}};
  for (const auto& [m, key] : places) {
    if (!fs::is_regular_file(m)) continue;
    const nlohmann::json j = read_json_file(m.string());
    if (j.contains("tasks") && j["tasks"].is_object() && j["tasks"].contains(key)) return j["tasks"][key];
  }
  return nullptr;
}

}  // namespace

const char* task_type_name(TaskType t) {
  return t == TaskType::Classification ? "classification" : "multiple_choice";
}

void for_each_jsonl(const std::string& path, const std::function<void(const nlohmann::json&, int64_t)>& line_fn) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open for reading");
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(at_line(path, n), std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) fail(at_line(path, n), std::string("expected a JSON object, got ") + j.type_name());
    line_fn(j, n);
  }
}

Task read_task_file(const std::string& path, const nlohmann::json& header) {
  using vt = nlohmann::json::value_t;
  Task task;
  task.path = path;
  const fs::path p(path);
  // <name>.<split>.jsonl
  std::string stem = p.filename().string();
  if (stem.size() > 6 && stem.compare(stem.size() - 6, 6, ".jsonl") == 0) stem.resize(stem.size() - 6);
  const size_t dot = stem.rfind('.');
  task.name = dot == std::string::npos ? stem : stem.substr(0, dot);
  task.split = dot == std::string::npos ? "" : stem.substr(dot + 1);
  task.domain = p.parent_path().filename() == "tasks" ? p.parent_path().parent_path().filename().string() : "";
  task.key = task.domain.empty() ? task.name : task.domain + "/" + task.name;

  std::vector<nlohmann::json> records;
  std::vector<int64_t> lines;
  for_each_jsonl(path, [&](const nlohmann::json& j, int64_t line) {
    records.push_back(j);
    lines.push_back(line);
  });
  if (records.empty()) fail(path, "no task items");

  if (!header.is_null()) {
    const std::string where = path + ": manifest header of " + task.key;
    const std::string type = field(header, "type", vt::string, where).get<std::string>();
    if (type == "classification") task.type = TaskType::Classification;
    else if (type == "multiple_choice") task.type = TaskType::MultipleChoice;
    else fail(where, "field \"type\": expected classification or multiple_choice, got " + type);
    if (header.contains("metric") && header["metric"].is_string()) task.metric = header["metric"];
    if (task.type == TaskType::Classification)
      for (const auto& l : field(header, "labels", vt::array, where)) {
        if (!l.is_string()) fail(where, "field \"labels\" must hold strings");
        task.labels.push_back(l.get<std::string>());
      }
    if (header.contains("baselines")) task.baselines = header["baselines"];
  } else {
    task.type = records.front().contains("choices") ? TaskType::MultipleChoice : TaskType::Classification;
    if (task.type == TaskType::Classification) {
      std::set<std::string> labels;
      for (size_t i = 0; i < records.size(); ++i)
        labels.insert(field(records[i], "label", vt::string, at_line(path, lines[i])).get<std::string>());
      task.labels.assign(labels.begin(), labels.end());
    }
  }
  if (task.metric.empty()) task.metric = task.type == TaskType::Classification ? "macro_f1" : "accuracy";
  if (task.type == TaskType::Classification && task.labels.size() < 2)
    fail(path, "a classification task needs at least two labels, got " + std::to_string(task.labels.size()));

  std::map<std::string, int32_t> label_index;
  for (size_t i = 0; i < task.labels.size(); ++i) label_index[task.labels[i]] = int32_t(i);
  for (size_t i = 0; i < records.size(); ++i) {
    const nlohmann::json& j = records[i];
    const std::string where = at_line(path, lines[i]);
    TaskItem item;
    item.id = field(j, "id", vt::string, where).get<std::string>();
    if (task.type == TaskType::Classification) {
      item.text = field(j, "text", vt::string, where).get<std::string>();
      const std::string label = field(j, "label", vt::string, where).get<std::string>();
      auto it = label_index.find(label);
      if (it == label_index.end())
        fail(where, "field \"label\": \"" + label + "\" is not one of the task's " +
                        std::to_string(task.labels.size()) + " labels");
      item.label = it->second;
    } else {
      item.context = field(j, "context", vt::string, where).get<std::string>();
      for (const auto& c : field(j, "choices", vt::array, where)) {
        if (!c.is_string()) fail(where, "field \"choices\" must hold strings");
        item.choices.push_back(c.get<std::string>());
      }
      if (item.choices.size() < 2)
        fail(where, "field \"choices\" needs at least two choices, got " + std::to_string(item.choices.size()));
      const int64_t answer = field(j, "answer", vt::number_integer, where).get<int64_t>();
      if (answer < 0 || answer >= int64_t(item.choices.size()))
        fail(where, "field \"answer\": " + std::to_string(answer) + " is outside 0.." +
                        std::to_string(item.choices.size() - 1));
      item.answer = int32_t(answer);
    }
    task.items.push_back(std::move(item));
  }
  return task;
}

std::vector<Task> load_tasks(const std::string& spec, const std::string& split, int64_t max_items) {
  std::vector<std::pair<std::string, nlohmann::json>> files;  // path, header
  auto add_from_manifest = [&](const fs::path& root, const fs::path& manifest, bool suite) {
    const nlohmann::json m = read_json_file(manifest.string());
    if (!m.contains("tasks") || !m["tasks"].is_object()) fail(manifest.string(), "missing object field \"tasks\"");
    for (const auto& [key, header] : m["tasks"].items()) {
      const std::string where = manifest.string() + ": tasks." + key;
      const nlohmann::json& f = field(header, "files", nlohmann::json::value_t::object, where);
      if (!f.contains(split)) fail(where, "no \"" + split + "\" file in \"files\"");
      // Suite manifest: files are relative to the task's domain folder ("cross" included).
      const fs::path domain_dir = suite ? root / key.substr(0, key.find('/')) : root;
      const fs::path file = domain_dir / f[split].get<std::string>();
      if (!fs::is_regular_file(file)) {
        if (suite && !fs::exists(domain_dir)) continue;  // a partial suite: domain not built
        fail(where, "task file " + file.string() + " does not exist");
      }
      files.emplace_back(file.string(), header);
    }
  };
  if (fs::is_directory(spec)) {
    const fs::path root(spec);
    const fs::path manifest = root / "manifest.json";
    if (!fs::is_regular_file(manifest))
      fail(spec, "not a suite or domain folder (no manifest.json); give task files instead");
    const bool suite = read_json_file(manifest.string()).contains("domains");
    add_from_manifest(root, manifest, suite);
  } else {
    for (const std::string& f : split_commas(spec)) {
      if (!fs::is_regular_file(f)) fail(f, "task file does not exist");
      const fs::path p(f);
      std::string name = p.filename().string();
      name = name.substr(0, name.find('.'));
      const bool in_suite = p.parent_path().filename() == "tasks";
      const std::string domain = in_suite ? p.parent_path().parent_path().filename().string() : "";
      files.emplace_back(f, in_suite ? find_header(p, domain, name) : nlohmann::json(nullptr));
    }
  }
  if (files.empty()) fail(spec, "no task files found for split " + split);
  std::vector<Task> tasks;
  for (const auto& [path, header] : files) {
    Task t = read_task_file(path, header);
    if (max_items > 0 && int64_t(t.items.size()) > max_items) t.items.resize(size_t(max_items));
    tasks.push_back(std::move(t));
  }
  return tasks;
}

Corpus read_corpus_file(const std::string& path, int64_t max_documents) {
  using vt = nlohmann::json::value_t;
  Corpus c;
  c.path = path;
  for_each_jsonl(path, [&](const nlohmann::json& j, int64_t line) {
    if (max_documents > 0 && int64_t(c.documents.size()) >= max_documents) return;
    const std::string where = at_line(path, line);
    Document d;
    d.id = field(j, "id", vt::string, where).get<std::string>();
    d.text = field(j, "text", vt::string, where).get<std::string>();
    if (c.domain.empty() && j.contains("domain") && j["domain"].is_string()) c.domain = j["domain"];
    c.documents.push_back(std::move(d));
  });
  if (c.domain.empty()) c.domain = fs::path(path).parent_path().filename().string();
  if (c.documents.empty()) fail(path, "no documents");
  return c;
}

std::vector<Corpus> load_corpora(const std::string& spec, const std::string& split, int64_t max_documents,
                                 const std::string& model_path) {
  std::vector<std::string> files;
  if (fs::is_directory(spec)) {
    const fs::path root(spec);
    if (fs::is_regular_file(root / (split + ".jsonl"))) {
      files.push_back((root / (split + ".jsonl")).string());  // a domain folder
    } else if (fs::is_regular_file(root / "manifest.json")) {
      const nlohmann::json m = read_json_file((root / "manifest.json").string());
      if (!m.contains("domains") || !m["domains"].is_object())
        fail((root / "manifest.json").string(), "missing object field \"domains\"");
      for (const auto& [domain, unused] : m["domains"].items()) {
        const fs::path f = root / domain / (split + ".jsonl");  // "cross" has no corpus
        if (fs::is_regular_file(f)) files.push_back(f.string());
      }
    } else {
      fail(spec, "no " + split + ".jsonl and no manifest.json: not a suite or domain folder");
    }
  } else {
    files = split_commas(spec);
  }
  if (files.empty()) fail(spec, "no corpus files found for split " + split);
  std::vector<Corpus> out;
  for (const std::string& f : files) {
    if (!is_token_shard_path(f)) {
      out.push_back(read_corpus_file(f, max_documents));
      continue;
    }
    for (Corpus& c : read_shard_corpora(f, model_path, max_documents)) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace gemkit::eval
