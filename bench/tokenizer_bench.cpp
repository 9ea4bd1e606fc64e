// Encoding speed: our SentencePiece encoder vs libsentencepiece's SentencePieceProcessor on
// the same freshly trained models (BPE and unigram), plus our byte-level BPE (GPT-2 and
// Llama 3 vocabularies) and WordPiece. Single thread, the same lines for every tokenizer.
//
//   tokenizer_bench [--testdata DIR] [--mb N] [--vocab N]
// DIR defaults to <build>/testdata (tests/fetch_test_data.sh). Not a test: prints figures.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/error.h"
#include "tokenizers/tokenizer_loaders.h"

using namespace gemkit;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open (run tests/fetch_test_data.sh)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// English-like text: GPT-2 vocabulary words with a Zipf-like skew, punctuation and numbers,
// plus the multilingual llama.cpp test inputs sprinkled in.
std::vector<std::string> make_text(const std::string& testdata, size_t bytes) {
  const auto enc = nlohmann::json::parse(slurp(testdata + "/gpt2/encoder.json"));
  std::vector<std::pair<int, std::string>> by_id;
  const std::string g = "\xC4\xA0";
  for (auto& [tok, id] : enc.items()) {
    if (tok.compare(0, g.size(), g) != 0) continue;
    std::string w = tok.substr(g.size());
    bool alpha = !w.empty();
    for (char c : w) alpha &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alpha) by_id.emplace_back(id.get<int>(), w);
  }
  std::sort(by_id.begin(), by_id.end());
  std::vector<std::string> extra;
  {
    const std::string inp = slurp(testdata + "/ggml-vocab-llama-spm.gguf.inp");
    std::istringstream ls(inp);
    for (std::string l; std::getline(ls, l);)
      if (!l.empty() && l != "__ggml_vocab_test__") extra.push_back(l);
  }
  uint64_t s = 2024;
  auto next = [&]() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / double(1ull << 53);
  };
  static const char* punct[] = {",", ".", ";", ":", "!", "?", " -", " (", ")", "'s", "\""};
  std::vector<std::string> lines;
  size_t total = 0;
  while (total < bytes) {
    std::string line;
    if (next() < 0.03) {
      line = extra[static_cast<size_t>(next() * extra.size()) % extra.size()];
    } else {
      const int n = 6 + static_cast<int>(next() * 30);
      for (int k = 0; k < n; ++k) {
        const double u = next();
        if (!line.empty()) line += ' ';
        if (next() < 0.04) line += std::to_string(static_cast<int>(next() * 100000));
        else line += by_id[static_cast<size_t>(by_id.size() * u * u * u)].second;
        if (next() < 0.12) line += punct[static_cast<size_t>(next() * 11) % 11];
      }
    }
    total += line.size() + 1;
    lines.push_back(std::move(line));
  }
  return lines;
}

template <typename F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void report(const char* name, size_t bytes, size_t tokens, double secs) {
  std::printf("  %-34s %8.2f MB/s  %10.0f tokens/s  (%zu tokens, %.3f s)\n", name, bytes / 1e6 / secs,
              tokens / secs, tokens, secs);
}

}  // namespace

int main(int argc, char** argv) {
  std::string testdata = std::string(GEMKIT_BINARY_DIR) + "/testdata";
  double mb = 4.0;
  int vocab = 8000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--testdata") testdata = argv[i + 1];
    else if (a == "--mb") mb = std::stod(argv[i + 1]);
    else if (a == "--vocab") vocab = std::stoi(argv[i + 1]);
  }
  try {
    const auto lines = make_text(testdata, static_cast<size_t>(mb * 1e6));
    size_t bytes = 0;
    for (const auto& l : lines) bytes += l.size();
    std::printf("text: %zu lines, %.2f MB; one thread; best of 3 runs\n", lines.size(), bytes / 1e6);

    const std::string dir = "/tmp/gemkit_bench_" + std::to_string(::getpid());
    const std::string corpus = dir + "_corpus.txt";
    {
      std::ofstream out(corpus);
      for (size_t i = 0; i < lines.size() && i < 40000; ++i) out << lines[i] << "\n";
    }
    for (const char* type : {"bpe", "unigram"}) {
      const std::string prefix = dir + "_" + type;
      sentencepiece::SetRandomGeneratorSeed(1);
      const auto st = sentencepiece::SentencePieceTrainer::Train(
          {{"input", corpus}, {"model_prefix", prefix}, {"vocab_size", std::to_string(vocab)},
           {"model_type", type}, {"byte_fallback", "true"}, {"character_coverage", "0.9995"},
           {"normalization_rule_name", "nmt_nfkc"}, {"minloglevel", "2"}, {"num_threads", "2"}});
      if (!st.ok()) fail(prefix, st.ToString());
      sentencepiece::SentencePieceProcessor ref;
      if (!ref.Load(prefix + ".model").ok()) fail(prefix + ".model", "SentencePieceProcessor cannot load it");
      auto ours = load_sentencepiece_model(prefix + ".model");
      std::printf("sentencepiece %s, vocab %d, nmt_nfkc, byte_fallback:\n", type, vocab);
      size_t ref_tokens = 0, our_tokens = 0, mismatched = 0;
      double ref_best = 1e9, our_best = 1e9;
      std::vector<std::vector<int>> ref_ids(lines.size());
      std::vector<std::vector<int32_t>> our_ids(lines.size());
      for (int run = 0; run < 3; ++run) {
        ref_best = std::min(ref_best, seconds([&] {
          for (size_t i = 0; i < lines.size(); ++i) ref_ids[i] = ref.EncodeAsIds(lines[i]);
        }));
        our_best = std::min(our_best, seconds([&] {
          for (size_t i = 0; i < lines.size(); ++i) our_ids[i] = ours->encode(lines[i], false);
        }));
      }
      for (size_t i = 0; i < lines.size(); ++i) {
        ref_tokens += ref_ids[i].size();
        our_tokens += our_ids[i].size();
        const bool same = std::equal(ref_ids[i].begin(), ref_ids[i].end(), our_ids[i].begin(), our_ids[i].end());
        if (!same && mismatched < 3) {
          std::printf("  mismatch on \"%s\":\n    sentencepiece", lines[i].c_str());
          for (int id : ref_ids[i]) std::printf(" %d", id);
          std::printf("\n    gemkit       ");
          for (int id : our_ids[i]) std::printf(" %d", id);
          std::printf("\n");
        }
        mismatched += !same;
      }
      report("libsentencepiece 0.1.97", bytes, ref_tokens, ref_best);
      report("gemkit", bytes, our_tokens, our_best);
      std::printf("  identical ids on %zu/%zu lines\n", lines.size() - mismatched, lines.size());
      std::remove((prefix + ".model").c_str());
      std::remove((prefix + ".vocab").c_str());
    }
    std::remove(corpus.c_str());

    std::printf("other gemkit tokenizers:\n");
    for (const char* v : {"gpt-2", "llama-bpe", "qwen2", "llama-spm", "bert-bge"}) {
      auto tok = load_tokenizer(testdata + "/ggml-vocab-" + v + ".gguf");
      size_t tokens = 0;
      double best = 1e9;
      for (int run = 0; run < 3; ++run) {
        size_t t = 0;
        best = std::min(best, seconds([&] {
          for (const auto& l : lines) t += tok->encode(l, false).size();
        }));
        tokens = t;
      }
      report((std::string(v) + " (" + tok->kind() + ")").c_str(), bytes, tokens, best);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
