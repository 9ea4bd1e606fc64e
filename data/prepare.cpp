#include "data/prepare.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/sha256.h"
#include "data/chat_examples.h"
#include "data/token_shards.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kSuiteDomains = {"general", "healthcare",     "law",        "finance",
                                                "stem",    "conversational", "commonsense", "multilingual"};
const std::set<std::string> kSplits = {"train", "validation", "test"};

struct Record {
  std::string text;
  std::vector<ChatMessage> messages;  // a chat example (data/chat_examples.h) instead of text
  std::string where;                  // file:line of a chat example, for errors while encoding
  std::string domain;
  std::string label;  // "" : none
  int32_t label_id = -1;  // an integer "label" field, used as the id directly
};

std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
std::string dir_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The split a file name declares: train.jsonl, <task>.validation.jsonl, ...; "" if none.
std::string split_of_file(const std::string& path) {
  std::string name = base_name(path);
  size_t dot = name.find_last_of('.');
  if (dot == std::string::npos) return "";
  name = name.substr(0, dot);
  size_t inner = name.find_last_of('.');
  std::string last = inner == std::string::npos ? name : name.substr(inner + 1);
  return kSplits.count(last) ? last : "";
}

// DIR/<domain>/train.jsonl or DIR/<domain>/tasks/<task>.<split>.jsonl: the suite domain.
std::string domain_of_file(const std::string& path) {
  std::string dir = dir_name(path);
  if (base_name(dir) == "tasks") dir = dir_name(dir);
  std::string d = base_name(dir);
  return std::find(kSuiteDomains.begin(), kSuiteDomains.end(), d) != kSuiteDomains.end() ? d : "";
}

void read_jsonl(const std::string& path, const std::string& split, const std::string& default_domain,
                std::vector<Record>& out, int64_t& skipped) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail(where, std::string("not valid JSON: ") + e.what());
    }
    const bool chat = is_chat_record(j);
    if (!chat && (!j.is_object() || !j.contains("text") || !j["text"].is_string()))
      fail(where, "expected an object with a string \"text\" field, or a chat example (\"messages\", or "
                  "\"prompt\" and \"completion\")");
    if (!split.empty() && j.contains("split") && j["split"].is_string() && j["split"] != split) {
      ++skipped;
      continue;
    }
    Record r;
    if (chat) {
      r.messages = parse_chat_record(j, where);
      r.where = where;
    } else {
      r.text = j["text"].get<std::string>();
    }
    if (!chat && r.text.empty()) {
      ++skipped;
      continue;
    }
    r.domain = default_domain;
    if (j.contains("domain")) {
      if (!j["domain"].is_string()) fail(where, "\"domain\" must be a string");
      r.domain = j["domain"].get<std::string>();
    }
    if (j.contains("label") && !j["label"].is_null()) {
      if (j["label"].is_string()) {
        r.label = j["label"].get<std::string>();
      } else if (j["label"].is_number_integer() && j["label"].get<int64_t>() >= 0) {
        r.label_id = j["label"].get<int32_t>();
      } else {
        fail(where, "\"label\" must be a string or a non-negative integer");
      }
    }
    out.push_back(std::move(r));
  }
}

// Sources and licences of the domains present, and a task's label list, from a suite manifest
// (DIR/manifest.json, domains under "domains") or one domain's manifest.
struct ManifestFacts {
  std::string source, licence;
  std::vector<std::string> labels;
};

json load_json(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
}

ManifestFacts read_manifest(const std::string& path, const std::set<std::string>& domains,
                            const std::string& task) {
  json m = load_json(path);
  auto domain_manifest = [&](const std::string& d) -> json {
    if (m.contains("domains") && m["domains"].contains(d)) return m["domains"][d];
    if (m.value("domain", "") == d) return m;
    std::string sibling = dir_name(path) + "/" + d + "/manifest.json";
    if (file_exists(sibling)) return load_json(sibling);
    return json();
  };
  ManifestFacts facts;
  std::vector<std::string> sources, licences;
  for (const std::string& d : domains) {
    json dm = domain_manifest(d);
    if (!dm.is_object() || !dm.contains("sources")) continue;
    for (const json& s : dm["sources"]) {
      std::string name = s.value("name", "");
      if (!name.empty() && std::find(sources.begin(), sources.end(), name) == sources.end())
        sources.push_back(name);
      if (s.contains("packages"))
        for (const json& p : s["packages"]) {
          std::string l = p.value("licence", "");
          if (!l.empty() && std::find(licences.begin(), licences.end(), l) == licences.end())
            licences.push_back(l);
        }
    }
  }
  auto join = [](const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
  };
  facts.source = join(sources, ", ");
  facts.licence = join(licences, "; ");
  if (!task.empty()) {
    size_t slash = task.find('/');
    if (slash == std::string::npos) fail(path, "task '" + task + "' must be domain/task");
    json dm = domain_manifest(task.substr(0, slash));
    std::string t = task.substr(slash + 1);
    if (!dm.is_object() || !dm.contains("tasks") || !dm["tasks"].contains(t) ||
        !dm["tasks"][t].contains("labels"))
      fail(path, "no task '" + task + "' with a label list");
    facts.labels = dm["tasks"][t]["labels"].get<std::vector<std::string>>();
  }
  return facts;
}

}  // namespace

std::vector<std::string> shard_domain_names(const std::vector<std::string>& found) {
  std::vector<std::string> names = kSuiteDomains;
  std::set<std::string> extra;
  for (const auto& d : found)
    if (std::find(names.begin(), names.end(), d) == names.end()) extra.insert(d);
  names.insert(names.end(), extra.begin(), extra.end());
  return names;
}

PrepareStats prepare_token_shard(const PrepareOptions& o) {
  const auto start = Clock::now();
  if (o.inputs.empty()) fail("data prepare", "no input files");
  if (o.out.empty()) fail("data prepare", "no --out file");

  // The split: given, or the one every file name agrees on. A file of another split is an
  // error rather than silently mixing held-out text into training data.
  std::string split = o.split;
  if (!split.empty() && !kSplits.count(split))
    fail("--split", "expected train, validation or test, got '" + split + "'");
  std::set<std::string> file_splits;
  for (const auto& in : o.inputs) {
    std::string s = split_of_file(in);
    if (!split.empty() && !s.empty() && s != split)
      fail(in, "is the " + s + " split, but --split is " + split);
    file_splits.insert(s);
  }
  if (split.empty() && file_splits.size() == 1) split = *file_splits.begin();

  PrepareStats stats;
  std::vector<Record> records;
  for (const auto& in : o.inputs) {
    if (!file_exists(in) || is_directory(in)) fail(in, "no such input file");
    std::string domain = !o.domain.empty() ? o.domain : domain_of_file(in);
    if (domain.empty()) domain = "default";
    if (ends_with(in, ".jsonl")) {
      read_jsonl(in, split, domain, records, stats.skipped);
    } else {
      Record r;
      r.text = read_text_file(in);
      r.domain = domain;
      if (r.text.empty())
        ++stats.skipped;
      else
        records.push_back(std::move(r));
    }
  }

  // Domain and label ids.
  std::set<std::string> domains_found, labels_found;
  for (const auto& r : records) {
    domains_found.insert(r.domain);
    if (!r.label.empty()) labels_found.insert(r.label);
  }
  ShardData shard;
  ShardInfo& info = shard.info;
  info.split = split;
  info.domain_names = shard_domain_names({domains_found.begin(), domains_found.end()});
  ManifestFacts facts;
  if (!o.manifest.empty()) facts = read_manifest(o.manifest, domains_found, o.task);
  else if (!o.task.empty()) fail("--task", "needs --manifest");
  info.label_names = !o.labels.empty() ? o.labels
                     : !facts.labels.empty() ? facts.labels
                                             : std::vector<std::string>(labels_found.begin(), labels_found.end());
  std::map<std::string, int32_t> domain_id, label_id;
  for (size_t i = 0; i < info.domain_names.size(); ++i) domain_id[info.domain_names[i]] = int32_t(i);
  for (size_t i = 0; i < info.label_names.size(); ++i) label_id[info.label_names[i]] = int32_t(i);
  for (const auto& l : labels_found)
    if (!label_id.count(l)) fail("data prepare", "label '" + l + "' is not in the label list");
  info.source = !o.source.empty() ? o.source : !facts.source.empty() ? facts.source : "unknown";
  info.licence = !o.licence.empty() ? o.licence : !facts.licence.empty() ? facts.licence : "unknown";

  // Tokenizer identity: what the ids mean. Loaders refuse to mix shards of different tokenizers.
  auto tokenizer = load_tokenizer(o.tokenizer);
  const SpecialTokens& sp = tokenizer->special();
  info.tokenizer_kind = tokenizer->kind();
  info.tokenizer_path = o.tokenizer;
  info.tokenizer_hash = "sha256:" + sha256_file(tokenizer_identity_file(o.tokenizer));
  info.vocab_size = tokenizer->vocab_size();
  info.bos_id = sp.bos;
  info.eos_id = sp.eos;
  info.pad_id = sp.pad;
  info.unk_id = sp.unk;
  info.cls_id = sp.cls;
  info.sep_id = sp.sep;
  info.mask_id = sp.mask;
  info.add_bos = sp.add_bos;
  info.add_eos = sp.add_eos;

  // Chat examples are rendered with the checkpoint's own template (a folder's tokenizer_config.json).
  std::unique_ptr<ChatTemplate> chat;
  for (const auto& r : records)
    if (!r.messages.empty()) {
      if (!is_directory(o.tokenizer))
        fail(r.where, "a chat example needs the checkpoint folder (its chat template), but --tokenizer " +
                         o.tokenizer + " is a file");
      chat = std::make_unique<ChatTemplate>(ChatTemplate::from_folder(o.tokenizer));
      break;
    }

  // Encode in blocks of documents on `threads` threads; blocks are appended in input order, so
  // the shard does not depend on the thread count.
  const size_t n = records.size();
  const size_t block = 256;
  const int threads = std::max(1, o.threads);
  std::vector<std::vector<int32_t>> encoded(std::min(n, block * size_t(threads)));
  std::vector<std::vector<uint8_t>> masks(encoded.size());  // chat examples only
  auto last_report = Clock::now();
  auto report = [&] {
    double s = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "data prepare: %lld docs, %lld tokens, %.1f MB of text, %.2f MB/s\n",
                 (long long)stats.docs, (long long)stats.tokens, double(stats.bytes) / 1e6,
                 s > 0 ? double(stats.bytes) / 1e6 / s : 0.0);
  };
  for (size_t begin = 0; begin < n; begin += encoded.size()) {
    const size_t count = std::min(encoded.size(), n - begin);
    auto work = [&](int t) {
      for (size_t i = size_t(t); i < count; i += size_t(threads)) {
        const Record& r = records[begin + i];
        if (r.messages.empty()) {
          encoded[i] = tokenizer->encode(r.text, /*add_special=*/false);
          continue;
        }
        ChatTokens c = encode_chat(*tokenizer, *chat, r.messages, r.where);
        encoded[i] = std::move(c.ids);
        masks[i] = std::move(c.loss_mask);
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    for (size_t i = 0; i < count; ++i) {
      const Record& r = records[begin + i];
      int32_t label = r.label_id >= 0 ? r.label_id : r.label.empty() ? -1 : label_id.at(r.label);
      if (label >= int32_t(info.label_names.size()) && !info.label_names.empty())
        fail("data prepare", "label id " + std::to_string(label) + " outside the label list");
      if (r.label_id >= 0 && info.label_names.empty())
        fail("data prepare", "integer labels need a label list (--labels or --task)");
      shard.add_document(encoded[i], domain_id.at(r.domain), label, masks[i]);
      stats.docs++;
      stats.tokens += int64_t(encoded[i].size());
      stats.bytes += int64_t(r.text.size());
      for (const auto& m : r.messages) stats.bytes += int64_t(m.content.size());
      encoded[i].clear();
      masks[i].clear();
    }
    if (o.progress && Clock::now() - last_report > std::chrono::seconds(2)) {
      report();
      last_report = Clock::now();
    }
  }
  records.clear();
  if (stats.docs == 0) fail("data prepare", "no documents (all inputs empty or of another split)");
  const std::filesystem::path parent = std::filesystem::path(o.out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);  // as every gemkit output
  write_token_shard(o.out, std::move(shard));
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}

}  // namespace gemkit
