// encode_lines TOKENIZER FILE.jsonl [--no-special]: the token ids of every line's "text", one
// JSON array per line, in order (blank lines skipped). TOKENIZER is anything load_tokenizer
// takes (a folder, tokenizer.json, vocab.txt, tokenizer.model, a .gguf). The parity check
// (tests/reference/check_tokenizers.py) compares these with Hugging Face `tokenizers`.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.h"
#include "tokenizers/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4 || (argc == 4 && std::string(argv[3]) != "--no-special")) {
    std::fprintf(stderr, "usage: encode_lines TOKENIZER FILE.jsonl [--no-special]\n");
    return 2;
  }
  try {
    const auto tok = gemkit::load_tokenizer(argv[1]);
    const bool add_special = argc == 3;
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) gemkit::fail(argv[2], "cannot open");
    std::string line, out;
    for (size_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const auto doc = nlohmann::json::parse(line, nullptr, false);
      if (doc.is_discarded() || !doc.is_object() || !doc.contains("text") || !doc["text"].is_string())
        gemkit::fail(std::string(argv[2]) + ": line " + std::to_string(n), "expected a JSON object with a string \"text\"");
      out = "[";
      for (int32_t id : tok->encode(doc["text"].get<std::string>(), add_special))
        out += (out.size() > 1 ? "," : "") + std::to_string(id);
      out += "]\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
  } catch (const gemkit::Error& e) {
    std::fprintf(stderr, "encode_lines: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
