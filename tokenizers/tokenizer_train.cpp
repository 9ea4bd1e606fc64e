#include "tokenizers/tokenizer_train.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/process.h"

namespace gemkit {

namespace {

const char* kWhere = "train_sentencepiece";

bool executable(const std::string& p) { return !p.empty() && ::access(p.c_str(), X_OK) == 0 && file_exists(p); }

std::string self_dir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string p(buf, static_cast<size_t>(n));
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? std::string() : p.substr(0, slash);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// SentencePiece reads plain text, one sentence per line; the suite's corpora are JSONL. The
// "text" field of every record is written, line by line, into a temporary text file.
std::string jsonl_to_text(const std::string& jsonl, const std::string& text_path) {
  std::ifstream in(jsonl);
  if (!in) fail(jsonl, "cannot open for reading");
  std::ofstream out(text_path, std::ios::binary | std::ios::trunc);
  if (!out) fail(text_path, "cannot create");
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(jsonl + ":" + std::to_string(n), std::string("invalid JSON: ") + e.what());
    }
    if (!record.is_object() || !record.contains("text") || !record["text"].is_string())
      fail(jsonl + ":" + std::to_string(n), "field \"text\": expected a string");
    out << record["text"].get<std::string>() << '\n';
  }
  if (!out.flush()) fail(text_path, "write failed");
  return text_path;
}

std::string join(const std::vector<std::string>& v, const char* what) {
  std::string out;
  for (const auto& s : v) {
    // spm_train separates list items with commas; such an item cannot be passed through.
    if (s.find(',') != std::string::npos)
      fail(kWhere, std::string(what) + ": \"" + s + "\" contains a comma, which spm_train cannot accept");
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

std::string fmt_double(double d) {
  std::ostringstream ss;
  ss.precision(17);
  ss << d;
  return ss.str();
}

}  // namespace

std::string find_spm_train_executable(const std::string& override_path) {
  std::vector<std::string> tried;
  auto check = [&](const std::string& p) {
    if (p.empty()) return false;
    tried.push_back(p);
    return executable(p);
  };
  if (!override_path.empty()) {
    if (check(override_path)) return override_path;
    fail(override_path, "trainer_path: not an executable file");
  }
  if (const char* env = std::getenv("GEMKIT_SPM_TRAIN"); env && *env) {
    if (check(env)) return env;
    fail(env, "GEMKIT_SPM_TRAIN: not an executable file");
  }
  const std::string dir = self_dir();
  if (!dir.empty()) {
    if (check(dir + "/gemkit-spm-train")) return dir + "/gemkit-spm-train";
    // Build tree: executables live in sibling folders (cli/, tests/, bench/) of data/.
    if (check(dir + "/../data/gemkit-spm-train")) return dir + "/../data/gemkit-spm-train";
  }
#ifdef GEMKIT_SPM_TRAIN_BUILD_PATH
  if (check(GEMKIT_SPM_TRAIN_BUILD_PATH)) return GEMKIT_SPM_TRAIN_BUILD_PATH;
#endif
  if (const char* path = std::getenv("PATH")) {
    std::string p(path);
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      const std::string d = p.substr(start, end - start);
      if (!d.empty() && check(d + "/gemkit-spm-train")) return d + "/gemkit-spm-train";
      start = end + 1;
    }
  }
  std::string list;
  for (const auto& t : tried) list += "\n  " + t;
  fail(kWhere, "gemkit-spm-train not found (set GEMKIT_SPM_TRAIN); tried:" + list);
}

SentencePieceTrainResult train_sentencepiece(const SentencePieceTrainOptions& o) {
  if (o.input_files.empty()) fail(kWhere, "input_files: expected at least one file, got none");
  for (const auto& f : o.input_files)
    if (!file_exists(f)) fail(f, "input_files: file not found");
  if (o.model_prefix.empty()) fail(kWhere, "model_prefix: expected a path prefix, got \"\"");
  if (o.model_type != "unigram" && o.model_type != "bpe")
    fail(kWhere, "model_type: expected \"unigram\" or \"bpe\", got \"" + o.model_type + "\"");
  if (o.vocab_size < 8) fail(kWhere, "vocab_size: expected >= 8, got " + std::to_string(o.vocab_size));
  if (!(o.character_coverage > 0.0 && o.character_coverage <= 1.0))
    fail(kWhere, "character_coverage: expected (0, 1], got " + fmt_double(o.character_coverage));
  static const char* rules[] = {"identity", "nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf"};
  bool rule_ok = false;
  for (const char* r : rules) rule_ok |= o.normalization_rule == r;
  if (!rule_ok)
    fail(kWhere, "normalization_rule: expected identity, nmt_nfkc, nfkc, nmt_nfkc_cf or nfkc_cf, got \"" +
                     o.normalization_rule + "\"");

  // JSONL inputs become temporary text files beside the model, removed when training ends.
  std::vector<std::string> inputs, temporaries;
  for (size_t i = 0; i < o.input_files.size(); ++i) {
    if (!ends_with(o.input_files[i], ".jsonl")) {
      inputs.push_back(o.input_files[i]);
      continue;
    }
    temporaries.push_back(o.model_prefix + ".input" + std::to_string(i) + ".txt");
    inputs.push_back(jsonl_to_text(o.input_files[i], temporaries.back()));
  }
  struct RemoveTemporaries {
    const std::vector<std::string>& paths;
    ~RemoveTemporaries() {
      for (const std::string& p : paths) ::unlink(p.c_str());
    }
  } remove_temporaries{temporaries};

  const std::string exe = find_spm_train_executable(o.trainer_path);
  std::vector<std::string> args = {
      exe,
      "--input=" + join(inputs, "input_files"),
      "--model_prefix=" + o.model_prefix,
      "--vocab_size=" + std::to_string(o.vocab_size),
      "--model_type=" + o.model_type,
      "--character_coverage=" + fmt_double(o.character_coverage),
      "--normalization_rule_name=" + o.normalization_rule,
      std::string("--byte_fallback=") + (o.byte_fallback ? "true" : "false"),
      std::string("--add_dummy_prefix=") + (o.add_dummy_prefix ? "true" : "false"),
      std::string("--split_digits=") + (o.split_digits ? "true" : "false"),
      "--unk_id=" + std::to_string(o.unk_id),
      "--bos_id=" + std::to_string(o.bos_id),
      "--eos_id=" + std::to_string(o.eos_id),
      "--pad_id=" + std::to_string(o.pad_id),
      "--random_seed=" + std::to_string(o.seed),
      "--num_threads=" + std::to_string(o.num_threads),
      "--max_sentence_length=" + std::to_string(o.max_sentence_length),
  };
  if (o.input_sentence_size > 0) {
    args.push_back("--input_sentence_size=" + std::to_string(o.input_sentence_size));
    args.push_back("--shuffle_input_sentence=true");
  }
  if (!o.user_defined_symbols.empty())
    args.push_back("--user_defined_symbols=" + join(o.user_defined_symbols, "user_defined_symbols"));
  if (!o.control_symbols.empty())
    args.push_back("--control_symbols=" + join(o.control_symbols, "control_symbols"));
  for (const auto& [k, v] : o.extra) args.push_back("--" + k + "=" + v);

  SentencePieceTrainResult result;
  const ProcessResult run = run_process(args);
  result.log = run.output;
  if (!run.ok()) {
    // The trainer's own message is on its last lines.
    const std::string how = run.exit_code < 128 ? "exited with status " + std::to_string(run.exit_code)
                                                : "was killed by signal " + std::to_string(run.exit_code - 128);
    fail(exe, how + " while training " + o.model_prefix + ".model:\n" + run.tail());
  }
  result.model_path = o.model_prefix + ".model";
  result.vocab_path = o.model_prefix + ".vocab";
  if (!file_exists(result.model_path))
    fail(result.model_path, "the trainer reported success but wrote no model file");
  return result;
}

}  // namespace gemkit
