// gemkit-spm-train: trains a SentencePiece BPE or unigram model. A separate executable on
// purpose: libsentencepiece bundles protobuf 3.14, which crashes any process that also loads
// libtorch (docs/design/toolchain.md), so the trainer runs out of process (see tokenizer_train.h).
//
// Usage: gemkit-spm-train --input=a.txt,b.txt --model_prefix=out/tok --vocab_size=8000
//          [--model_type=unigram|bpe] [--character_coverage=0.9995]
//          [--normalization_rule_name=identity] [--byte_fallback=true]
//          [--user_defined_symbols=a,b] [--control_symbols=x,y] [--random_seed=42]
//          [any other spm_train flag, passed through]
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

int main(int argc, char** argv) {
  std::unordered_map<std::string, std::string> kwargs;
  unsigned int seed = 42;  // fixed by default: the same corpus gives the same model
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: %s --input=FILES --model_prefix=PREFIX --vocab_size=N [--model_type=unigram|bpe]\n"
          "       [--character_coverage=F] [--normalization_rule_name=identity|nmt_nfkc|nfkc|...]\n"
          "       [--byte_fallback=true|false] [--user_defined_symbols=a,b] [--control_symbols=a,b]\n"
          "       [--random_seed=N] [other spm_train --key=value flags]\n",
          argv[0]);
      return 0;
    }
    if (a.rfind("--", 0) != 0 || a.find('=') == std::string::npos) {
      std::fprintf(stderr, "gemkit-spm-train: argument %d: expected --key=value, got \"%s\"\n", i, a.c_str());
      return 2;
    }
    const size_t eq = a.find('=');
    const std::string key = a.substr(2, eq - 2), value = a.substr(eq + 1);
    if (key == "random_seed") {
      char* end = nullptr;
      const unsigned long v = std::strtoul(value.c_str(), &end, 10);
      if (value.empty() || *end) {
        std::fprintf(stderr, "gemkit-spm-train: --random_seed: expected an unsigned integer, got \"%s\"\n",
                     value.c_str());
        return 2;
      }
      seed = static_cast<unsigned int>(v);
      continue;
    }
    kwargs[key] = value;
  }
  for (const char* required : {"input", "model_prefix"}) {
    if (!kwargs.count(required)) {
      std::fprintf(stderr, "gemkit-spm-train: --%s is required\n", required);
      return 2;
    }
  }
  sentencepiece::SetRandomGeneratorSeed(seed);
  const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
  if (!status.ok()) {
    std::fprintf(stderr, "gemkit-spm-train: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
