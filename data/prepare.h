// `gemkit data prepare`: text -> HDF5 token shard (data/token_shards.h). Torch-free.
//
// Inputs are JSONL files (one document per line: "text", and optionally "domain", "label",
// "split", "id"; the suite's corpus records {"id","text","domain","source"} and classification
// items {"id","text","label","split"} both fit) or plain text files (one document per file).
// Documents are encoded without special tokens; the loaders add BOS/EOS (data/loader.h).
// Our tokenizers are our own torch-free code (no libsentencepiece), so encoding runs
// in-process, on `threads` threads.
//
// Held-out data stays held out: with a split given, records whose "split" field differs are
// skipped, and an input named train/validation/test.jsonl (or <task>.<split>.jsonl) of another
// split is an error; without one, the split is taken from the file names when they agree.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gemkit {

struct PrepareOptions {
  std::string tokenizer;            // checkpoint folder or tokenizer file (load_tokenizer)
  std::string out;                  // the .h5 shard, written atomically
  std::vector<std::string> inputs;  // .jsonl or text files
  std::string split;                // "" : from the file names, else unspecified
  std::string domain;               // for documents without a "domain" field; "" : "default"
  std::string source, licence;      // shard attributes; "" : from the manifest, else "unknown"
  std::string manifest;             // suite manifest.json (or a domain's) for source/licence/labels
  std::string task;                 // "domain/task" in the manifest: its label list fixes label ids
  std::vector<std::string> labels;  // explicit label order; else the task's, else sorted unique
  int threads = 2;
  bool progress = true;             // progress lines on stderr
};

struct PrepareStats {
  int64_t docs = 0, tokens = 0, bytes = 0;  // bytes of document text
  int64_t skipped = 0;                       // records of another split, or empty text
  double seconds = 0;                        // wall time, reading to rename
  double mb_per_s() const { return seconds > 0 ? double(bytes) / 1e6 / seconds : 0; }
};

// Throws gemkit::Error naming the file and line of a bad record.
PrepareStats prepare_token_shard(const PrepareOptions& options);

// Domain ids: the suite's eight domains first, in DATA.md's order (so ids agree across shards),
// then any other names sorted.
std::vector<std::string> shard_domain_names(const std::vector<std::string>& found);

}  // namespace gemkit
