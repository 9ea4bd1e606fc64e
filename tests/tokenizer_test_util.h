// Shared helpers for the tokenizer tests: test-data location (fails loudly when missing),
// llama.cpp's .inp/.out case files, and a deterministic training corpus built from them.
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "formats/gguf.h"

namespace gemkit::testing {

inline std::string testdata_dir() { return std::string(GEMKIT_BINARY_DIR) + "/testdata"; }

// Returns the path, or records a fatal failure naming the missing file and the fix.
inline std::string require_testdata(const std::string& name) {
  const std::string p = testdata_dir() + "/" + name;
  if (!file_exists(p)) {
    ADD_FAILURE() << "test data missing: " << p
                  << "\n  run: bash tests/fetch_test_data.sh " << testdata_dir()
                  << "  (setup.sh test does this)";
    return {};
  }
  return p;
}

// A parameterised test's name from its vocabulary name ("llama-spm" -> "llama_spm": gtest names
// take letters, digits and underscores only).
inline std::string vocab_param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// llama.cpp's format (tests/test-tokenizer-0.cpp): inputs separated by
// "\n__ggml_vocab_test__\n", one line of space-separated ids per input.
inline std::vector<VocabCase> read_vocab_cases(const std::string& gguf_path) {
  const std::string inp = slurp(gguf_path + ".inp"), out = slurp(gguf_path + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(inp.substr(pos));
      break;
    }
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<std::vector<int32_t>> outputs;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream nums(line);
    std::vector<int32_t> ids;
    for (long v; nums >> v;) ids.push_back(static_cast<int32_t>(v));
    outputs.push_back(ids);
  }
  std::vector<VocabCase> cases;
  if (inputs.size() != outputs.size()) {
    ADD_FAILURE() << gguf_path << ": " << inputs.size() << " inputs but " << outputs.size() << " outputs";
    return cases;
  }
  for (size_t i = 0; i < inputs.size(); ++i) cases.push_back({inputs[i], outputs[i]});
  return cases;
}

// Writes a tokenizer.json equivalent to a GGUF byte-level BPE vocabulary.
inline std::string bpe_json_from_gguf(const std::string& gguf_path, const std::string& regex, bool ignore_merges) {
  GgufFile g(gguf_path);
  nlohmann::json vocab = nlohmann::json::object();
  const auto& toks = g.get("tokenizer.ggml.tokens");
  const auto& types = g.get("tokenizer.ggml.token_type");
  nlohmann::json added = nlohmann::json::array();
  for (size_t i = 0; i < toks.size(); ++i) {
    const std::string t(toks.string_at(i));
    if (types.int_at(i) == 3 || types.int_at(i) == 4)
      added.push_back({{"id", i}, {"content", t}, {"special", types.int_at(i) == 3}});
    else
      vocab[t] = i;
  }
  nlohmann::json merges = nlohmann::json::array();
  for (auto m : g.get("tokenizer.ggml.merges").strings()) merges.push_back(std::string(m));
  nlohmann::json pre;
  if (regex.empty()) {
    pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  } else {
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  }
  nlohmann::json root = {{"version", "1.0"},
                         {"added_tokens", added},
                         {"normalizer", nullptr},
                         {"pre_tokenizer", pre},
                         {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", ignore_merges}}}};
  return root.dump();
}

// A deterministic English-like corpus: words from GPT-2's vocabulary (encoder.json keys that
// start with the byte-level space "Ġ"), drawn with a Zipf-like skew so that BPE/unigram find
// real structure, plus punctuation, digits, and every llama.cpp test input.
inline std::vector<std::string> make_corpus(size_t n_lines, uint64_t seed = 12345) {
  std::vector<std::string> words;
  const std::string g = "\xC4\xA0";  // "Ġ", GPT-2's byte-level space
  const auto enc = nlohmann::json::parse(slurp(testdata_dir() + "/gpt2/encoder.json"));
  std::vector<std::pair<int, std::string>> by_id;
  for (auto& [tok, id] : enc.items()) {
    if (tok.compare(0, g.size(), g) != 0) continue;
    std::string w = tok.substr(g.size());
    bool alpha = !w.empty();
    for (char c : w) alpha &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alpha) by_id.emplace_back(id.get<int>(), w);
  }
  std::sort(by_id.begin(), by_id.end());  // low ids were merged first: the frequent words
  for (auto& [id, w] : by_id) words.push_back(w);
  std::vector<std::string> lines;
  if (words.empty()) return lines;
  uint64_t s = seed;
  auto next = [&]() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / double(1ull << 53);
  };
  static const char* punct[] = {",", ".", ";", ":", "!", "?", " -", " (", ")", "'s", "\""};
  for (size_t i = 0; i < n_lines; ++i) {
    std::string line;
    const int n = 4 + static_cast<int>(next() * 20);
    for (int k = 0; k < n; ++k) {
      const double u = next();
      const size_t idx = static_cast<size_t>(words.size() * u * u * u);
      if (!line.empty()) line += ' ';
      if (next() < 0.05) line += std::to_string(static_cast<int>(next() * 2000));
      else line += words[idx];
      if (next() < 0.12) line += punct[static_cast<size_t>(next() * 11) % 11];
    }
    lines.push_back(line);
  }
  for (const char* v : {"llama-spm", "bert-bge"}) {
    for (const auto& c : read_vocab_cases(testdata_dir() + "/ggml-vocab-" + std::string(v) + ".gguf")) {
      std::istringstream ls(c.text);
      for (std::string l; std::getline(ls, l);) lines.push_back(l);
    }
  }
  return lines;
}

}  // namespace gemkit::testing
