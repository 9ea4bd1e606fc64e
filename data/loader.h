// Training and evaluation batches from HDF5 token shards (data/token_shards.h). Torch-free:
// produces gemkit::TokenBatch (data/batch.h); train/ turns it into tensors.
//
//   LoaderOptions o = loader_options_for_shard("out/data/law.train.h5", BatchKind::CausalLM);
//   o.batch_size = 8; o.seq_len = 256; o.seed = 1;
//   Loader loader({{"out/data/law.train.h5", 0.8}, {"out/data/general.train.h5", 0.2}}, o);
//   TokenBatch b = loader.next();              // never ends; epochs advance
//   std::string s = loader.state_json();       // store in the checkpoint ...
//   loader.restore(s);                          // ... and the same batches follow
//
// Conventions (documents are stored without special tokens; the loader adds them):
//  - Every document is framed as [bos_id] tokens [eos_id]; an id < 0 means "none". For a decoder
//    (Llama: bos+eos; Qwen2: eos only) the EOS teaches the model where a document ends; for BERT
//    pass bos_id = [CLS] and eos_id = [SEP] (loader_options_for_shard does both).
//  - CausalLM / MaskedLM rows are packed: framed documents are concatenated and cut into rows
//    of seq_len. Every document (and every later piece of a document split across rows) is its
//    own segment: segment_ids count 0, 1, ... within a row, and the first token of a segment
//    has label -100, so no loss spans two documents. Only the last row of an epoch is padded.
//  - Chat examples (shards with a loss mask, data/chat_examples.h): CausalLM labels are -100
//    wherever the mask is 0 (prompts, role headers), so the loss, distillation and the
//    forgetting budget, which all read labels, see the answers only. Packing as above: an answer
//    attends only to its own conversation.
//  - Classification rows hold one document each, truncated to seq_len (the eos is kept) and
//    padded; class_labels is the shard's doc_label, labels are all -100.
//  - MaskedLM: of the real, non-special tokens, mlm_probability are chosen; 80% become
//    mask_id, 10% a random id in [0, vocab_size), 10% stay; labels hold the original id at the
//    chosen positions. The draw is a pure function of (seed, row number, position).
//  - Shuffling is of documents, by a permutation drawn from (seed, source, epoch); a new
//    permutation every epoch. shuffle = false reads documents in shard order.
//  - Mixing: each row comes from one source, chosen by largest deficit first (the source whose
//    realised count is furthest below weight_i / sum(weights) * rows); ties go to the lower
//    index. Realised fractions are within 1 row of the target at every point. source_ids
//    records the choice. Each source keeps its own cursor and epochs.
//  - Held-out data is a separate shard (its split attribute); nothing is re-drawn per run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/batch.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

class TokenShard;

// The ids around every document, [bos_id] tokens [eos_id] (an id < 0: none). Loaders and
// evaluation frame documents alike, so that held-out perplexity scores what training taught
// (the eos included: where a document ends).
// A chat example (TokenShard::doc_is_chat) is framed by its chat template already and gets no
// ids around it; its loss mask (1: the token is a training target) comes from the shard, where
// other documents train on every token, framing included.
struct DocumentFraming {
  int32_t bos_id = -1, eos_id = -1;

  // Appends the framed ids / the framed document `doc` of `shard` to out.
  void append(const std::vector<int32_t>& ids, std::vector<int32_t>& out) const;
  void append(const TokenShard& shard, int64_t doc, std::vector<int32_t>& out) const;
  // Appends the loss mask of the framed document `doc` (as many entries as append adds).
  void append_mask(const TokenShard& shard, int64_t doc, std::vector<uint8_t>& out) const;
  int64_t length(const TokenShard& shard, int64_t doc) const;  // of the framed document
};

// The framing for a tokenizer's special tokens: WordPiece (BERT) [CLS] ... [SEP]; decoders
// their bos when the tokenizer prepends one (Llama) and their eos when they have one.
DocumentFraming document_framing(const SpecialTokens& special);

struct SourceSpec {
  std::string path;     // an HDF5 token shard (gemkit data prepare)
  double weight = 1.0;  // relative share of rows; > 0
};

enum class BatchKind { CausalLM, MaskedLM, Classification };

struct LoaderOptions {
  BatchKind kind = BatchKind::CausalLM;
  int64_t batch_size = 8;
  int64_t seq_len = 256;
  uint64_t seed = 0;
  bool shuffle = true;
  double mlm_probability = 0.15;  // MaskedLM only
  // Token ids; -1: none. pad_id < 0 pads with 0 (attention_mask says what is padding).
  int32_t pad_id = -1, bos_id = -1, eos_id = -1, mask_id = -1;
  int64_t vocab_size = 0;  // MaskedLM random replacements; 0: taken from the first shard
  // Chat examples (CausalLM): train on the answers only (their loss mask), or on every token.
  bool chat_answers_only = true;
  // A chat example longer than seq_len is dropped (counted, and reported on stderr when the
  // loader opens), or truncated to its first seq_len tokens. Either way a conversation never
  // continues into another row, where its answers would lose their prompt: one that does not
  // fit in the rest of a row starts the next row.
  enum class ChatOverflow { Drop, Truncate } chat_overflow = ChatOverflow::Drop;
};

// Options with the special ids of the shard's tokenizer (stored in the shard's attributes):
// bos_id/eos_id from document_framing, [MASK] for masking. The rest are LoaderOptions defaults.
LoaderOptions loader_options_for_shard(const std::string& shard, BatchKind kind);

class Loader {
 public:
  // Opens and validates every shard (throws gemkit::Error naming the file); all shards must
  // come from the same tokenizer (same hash).
  Loader(std::vector<SourceSpec> sources, LoaderOptions options);
  ~Loader();
  Loader(Loader&&) noexcept;
  Loader& operator=(Loader&&) noexcept;

  TokenBatch next();  // never ends; epochs advance

  double epoch() const;              // fractional epochs of source 0 (the primary source)
  // Chat examples longer than seq_len, over all sources (dropped or truncated, per chat_overflow).
  int64_t overlong_chat_examples() const;
  int64_t tokens_per_epoch() const;  // of source 0, framing tokens included
  int64_t rows_emitted() const;
  const LoaderOptions& options() const;

  // The position (per source: epoch, document cursor, offset in the document; the mixing
  // counts; the row counter that drives masking) as JSON. restore() checks that the state
  // belongs to the same sources, kind, seq_len and seed, then continues exactly where the saved
  // loader was: the following batches are identical.
  std::string state_json() const;
  void restore(const std::string& json);

 private:
  struct Impl;
  Impl* impl_ = nullptr;
};

// Evaluation: the shard once, in order, as packed causal-LM rows (no shuffling, no masking,
// options.kind ignored). The last batch may have fewer rows, and its last row is padded.
std::vector<TokenBatch> sequential_batches(const std::string& shard, const LoaderOptions& options);

}  // namespace gemkit
