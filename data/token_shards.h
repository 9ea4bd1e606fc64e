// HDF5 token shards: the tokenized corpus that loaders read (written by `gemkit data prepare`).
// Torch-free. One file holds one split of one or more domains:
//
//   /tokens       int32 [n_tokens]   every document's ids back to back, no special tokens
//                                     (loaders add BOS/EOS); chunked 64K elements, uncompressed
//                                     (token ids compress only ~28%; uncompressed chunks make
//                                     random document reads cheap)
//   /doc_offsets  int64 [n_docs + 1] document i is tokens[doc_offsets[i] : doc_offsets[i+1]]
//   /doc_domain   int32 [n_docs]     index into the domain_names attribute
//   /doc_label    int32 [n_docs]     index into label_names, -1: no label
//   /loss_mask    uint8 [n_tokens]   optional (chat examples, data/chat_examples.h): 1 where the
//                                     model is trained to predict the token (answers), 0 elsewhere;
//                                     absent: every token is trained
//   /doc_chat     uint8 [n_docs]     with /loss_mask: 1 for a chat example, which its chat template
//                                     already frames (loaders add no BOS/EOS: no double BOS)
//   attributes    format = "gemkit-token-shard", format_version, tokenizer_* (kind, path,
//                 sha256 of the tokenizer file, vocab size, special ids), source, licence,
//                 split, domain_names[], label_names[], n_docs, n_tokens
//
// Python reads it with h5py as is (string attributes are fixed-length, null-padded UTF-8 bytes).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gemkit {

// 2: string attributes are fixed-length (1 held variable-length strings, which libhdf5 1.10 can
// hang on when damaged; version-1 shards are refused with "re-run gemkit data prepare").
// 3: the optional /loss_mask dataset. Version-2 shards are read (they have no mask).
constexpr int32_t kTokenShardFormatVersion = 3;
constexpr int32_t kTokenShardOldestReadable = 2;
constexpr int64_t kTokenShardChunk = 64 * 1024;  // elements per chunk of /tokens

struct ShardInfo {
  int32_t format_version = kTokenShardFormatVersion;
  std::string tokenizer_kind;  // Tokenizer::kind()
  std::string tokenizer_path;  // as given to prepare
  std::string tokenizer_hash;  // "sha256:<hex>" of the tokenizer file's bytes
  int64_t vocab_size = 0;
  // The tokenizer's special ids (-1: none), so loaders frame documents without the tokenizer.
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1, cls_id = -1, sep_id = -1,
          mask_id = -1;
  bool add_bos = false, add_eos = false;  // the tokenizer's own encode() convention
  std::string source;   // where the text came from (free text)
  std::string licence;  // its licence(s)
  std::string split;    // "train", "validation", "test", or "" when not split
  std::vector<std::string> domain_names;  // doc_domain id -> name
  std::vector<std::string> label_names;   // doc_label id -> name
  int64_t n_docs = 0, n_tokens = 0;       // filled by the reader (and the writer)
};

struct ShardData {
  ShardInfo info;
  std::vector<int32_t> tokens;
  std::vector<int64_t> doc_offsets{0};  // starts with 0; one more entry per document
  std::vector<int32_t> doc_domain;
  std::vector<int32_t> doc_label;
  std::vector<uint8_t> loss_mask;  // empty: no mask (every token trained), else one per token
  std::vector<uint8_t> doc_chat;   // with loss_mask: 1 per chat example

  // A chat example comes with its `mask` (one 0/1 per id); other documents are trained on every
  // token.
  void add_document(const std::vector<int32_t>& ids, int32_t domain, int32_t label = -1,
                    const std::vector<uint8_t>& mask = {});
};

// Validates (offsets, ids in range, names for every domain/label id) and writes atomically:
// "<path>.tmp.<pid>" is written and closed, then renamed over path. Throws gemkit::Error.
void write_token_shard(const std::string& path, ShardData data);

// Random access to one shard. Opening validates the format version, the datasets' presence,
// types and sizes, and the offsets (start 0, monotone, end = n_tokens); errors name the file
// and the dataset. The per-document arrays are held in memory; tokens are read on demand
// through a chunk cache (64 MiB by default) sized so that repeated random reads hit memory.
class TokenShard {
 public:
  explicit TokenShard(const std::string& path, size_t chunk_cache_bytes = size_t(64) << 20);
  ~TokenShard();
  TokenShard(TokenShard&&) noexcept;
  TokenShard& operator=(TokenShard&&) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  const ShardInfo& info() const { return info_; }
  int64_t n_docs() const { return info_.n_docs; }
  int64_t n_tokens() const { return info_.n_tokens; }
  int64_t doc_length(int64_t doc) const;
  int32_t doc_domain(int64_t doc) const { return doc_domain_.at(size_t(doc)); }
  int32_t doc_label(int64_t doc) const { return doc_label_.at(size_t(doc)); }
  const std::vector<int64_t>& doc_offsets() const { return doc_offsets_; }

  // tokens[begin, begin + count) appended to out.
  void read_tokens(int64_t begin, int64_t count, std::vector<int32_t>& out) const;
  std::vector<int32_t> read_document(int64_t doc) const;
  // Whether the shard holds a /loss_mask; loss_mask[begin, begin + count) appended to out (all
  // ones when it holds none).
  bool has_loss_mask() const { return loss_mask_ >= 0; }
  // Whether document `doc` is a chat example (framed by its template, not by loaders).
  bool doc_is_chat(int64_t doc) const { return !doc_chat_.empty() && doc_chat_.at(size_t(doc)) != 0; }
  void read_loss_mask(int64_t begin, int64_t count, std::vector<uint8_t>& out) const;

 private:
  std::string path_;
  ShardInfo info_;
  std::vector<int64_t> doc_offsets_;
  std::vector<int32_t> doc_domain_, doc_label_;
  std::vector<uint8_t> doc_chat_;
  int64_t file_ = -1, tokens_ = -1, loss_mask_ = -1;  // hid_t (int64_t in HDF5 1.10+), kept out of this header
};

// The file whose bytes identify a tokenizer path as load_tokenizer() resolves it: a folder's
// tokenizer.json, else tokenizer.model, else vocab.txt; a file is itself.
std::string tokenizer_identity_file(const std::string& path);

}  // namespace gemkit
