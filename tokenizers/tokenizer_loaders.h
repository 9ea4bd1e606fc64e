// Per-format tokenizer loaders behind load_tokenizer() (tokenizer.h). Exposed so that tests,
// benchmarks and export code can pick a format explicitly.
#pragma once
#include <memory>
#include <string>

#include "tokenizers/bpe_tokenizer.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

class GgufFile;

// Hugging Face tokenizer.json: byte-level BPE or WordPiece. A sibling tokenizer_config.json,
// when present, supplies bos/eos/pad names and add_bos_token / add_eos_token.
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path);
// True when tokenizer.json describes a SentencePiece-style BPE (Metaspace, byte_fallback)
// that we read from tokenizer.model instead.
bool hf_tokenizer_json_is_sentencepiece(const std::string& path);
// The vocabulary, merges, added tokens, pre-tokenizer and special ids of a byte-level BPE
// tokenizer.json (what an exporter writes as GGUF tokenizer.ggml.* metadata).
ByteLevelBpeConfig load_byte_level_bpe_config(const std::string& path);
// SentencePiece tokenizer.model.
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path);
// BERT vocab.txt (lower-casing, as bert-base-uncased; pass lowercase=false for cased vocabs).
std::unique_ptr<Tokenizer> load_wordpiece_vocab(const std::string& path, bool lowercase = true);
// GPT-2's original encoder.json + vocab.bpe pair.
std::unique_ptr<Tokenizer> load_gpt2_encoder(const std::string& encoder_json,
                                             const std::string& vocab_bpe);
// tokenizer.ggml.* metadata: "llama" -> SentencePiece, "gpt2" -> byte-level BPE
// (tokenizer.ggml.pre picks the pre-tokenizer), "bert" -> WordPiece.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& gguf);
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);

}  // namespace gemkit
