// Training SentencePiece tokenizers from a torch process: runs the gemkit-spm-train
// executable (tokenizers/spm_train_main.cpp) as a subprocess, because libsentencepiece must not be
// loaded next to libtorch (docs/design/toolchain.md). The result is a standard tokenizer.model that
// load_tokenizer() reads with our own parser.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gemkit {

struct SentencePieceTrainOptions {
  std::vector<std::string> input_files;  // plain text (one sentence per line) or JSONL ("text" fields)
  std::string model_prefix;              // writes <prefix>.model and <prefix>.vocab
  int32_t vocab_size = 8000;
  std::string model_type = "unigram";    // "unigram" or "bpe"
  double character_coverage = 0.9995;    // 1.0 for small alphabets
  // identity (default: text is kept as is), nmt_nfkc, nfkc, nmt_nfkc_cf, nfkc_cf
  std::string normalization_rule = "identity";
  bool byte_fallback = true;             // unknown characters become <0xNN> byte pieces
  bool add_dummy_prefix = true;
  bool split_digits = false;
  std::vector<std::string> user_defined_symbols;  // always one piece, matched in text
  std::vector<std::string> control_symbols;       // reserved ids, never produced by encode
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  uint32_t seed = 42;                     // with num_threads the same, training is repeatable
  int32_t num_threads = 2;
  int64_t input_sentence_size = 0;        // 0: use every sentence; else sample this many
  int32_t max_sentence_length = 16384;    // bytes; longer lines are skipped by the trainer
  // Extra spm_train flags ("key" -> "value"), passed through unchecked.
  std::vector<std::pair<std::string, std::string>> extra;
  // Path of gemkit-spm-train; empty: $GEMKIT_SPM_TRAIN, next to this executable, the build
  // tree, then $PATH.
  std::string trainer_path;
};

struct SentencePieceTrainResult {
  std::string model_path;  // <prefix>.model
  std::string vocab_path;  // <prefix>.vocab
  std::string log;         // the trainer's stderr
};

// Throws gemkit::Error with the trainer's message (and the tail of its log) on failure,
// naming the option that is wrong when we can check it up front.
SentencePieceTrainResult train_sentencepiece(const SentencePieceTrainOptions& options);

// Where train_sentencepiece() finds the trainer; throws if nowhere.
std::string find_spm_train_executable(const std::string& override_path = "");

}  // namespace gemkit
