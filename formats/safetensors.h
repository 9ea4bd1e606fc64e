// Hugging Face safetensors: reader (memory-mapped, strictly validated), writer (atomic,
// HF-compatible layout) and sharded checkpoints (model.safetensors.index.json).
// Torch-free on purpose: the edge runtime reads weights without libtorch; model/state_dict.h
// is the torch bridge.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file_io.h"

namespace gemkit {

// The file format is little-endian; gemkit hands its bytes to the CPU as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType dtype);  // "F32", "BF16", ... as written in headers
size_t dtype_size(DType dtype);       // bytes per element
bool dtype_is_floating(DType dtype);
// Parses a header dtype string; `where` prefixes the error for unknown names.
DType parse_dtype(const std::string& name, const std::string& where);

// "[2, 3]" -- used in error messages across gemkit.
std::string shape_text(const std::vector<int64_t>& shape);

// One tensor inside a mapped file. `data` points into the map (it may be unaligned: not
// every writer pads the header) and stays valid as long as the owning SafetensorsFile.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages

  int64_t numel() const;
};

// One .safetensors file. The constructor validates the whole header against the file
// (sizes, offsets, holes, overlaps, duplicates) so later reads never touch bytes outside
// a tensor.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return map_.path(); }
  // Sorted by data offset, i.e. the order of the bytes in the file.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;  // nullptr when absent
  const TensorView& at(const std::string& name) const;    // throws naming file and tensor
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile map_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Every tensor of a checkpoint, in one file or in shards listed by an index.
class SafetensorsSet {
 public:
  // `path`: a .safetensors file, a *.safetensors.index.json, or a folder holding
  // model.safetensors or model.safetensors.index.json (the single file wins, as in
  // transformers). An index is checked against its shards: every listed shard exists, every
  // listed tensor is in the shard the index names, and every shard tensor is listed.
  static SafetensorsSet open(const std::string& path);

  // What was opened (a file or an index), for error messages.
  const std::string& source() const { return source_; }
  // All tensors, sorted by name.
  const std::map<std::string, const TensorView*>& tensors() const { return by_name_; }
  const TensorView* find(const std::string& name) const;
  std::vector<std::string> files() const;
  // The first file's __metadata__ (shards written together carry the same one).
  const std::map<std::string, std::string>& metadata() const;

 private:
  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> by_name_;
};

// The names Hugging Face uses in a checkpoint folder,
inline constexpr const char* kSafetensorsSingleName = "model.safetensors";
inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";
// and the file gemkit adds beside them: the tensors of modules added to the model (adapters,
// routers), written by the trainer (train/checkpointing.h) and by GemModules::save.
inline constexpr const char* kExtraTensorsFile = "extra.safetensors";

// Collects tensors and writes them as safetensors. Headers list tensors sorted by name and
// the data follows in the same order; the header is padded with spaces so the data starts
// 8-byte aligned. Every file is written atomically.
class SafetensorsWriter {
 public:
  // `data` must stay valid until the last write unless `owner` keeps it alive (the torch
  // bridge passes the converted tensor here, so no copy of the weights is made).
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
           const void* data, size_t nbytes, std::shared_ptr<const void> owner = nullptr);
  void set_metadata(std::map<std::string, std::string> metadata) { metadata_ = std::move(metadata); }

  size_t size() const { return entries_.size(); }
  uint64_t total_bytes() const;  // tensor data only, as in the index's total_size

  // One file.
  void write(const std::string& path) const;

  // Hugging Face sharding: tensors in the order they were added are packed into shards of
  // at most `max_shard_bytes` of data (a bigger tensor gets a shard of its own), named
  // <stem>-00001-of-0000N.safetensors next to <stem>.safetensors.index.json. With a single
  // shard it writes plain <stem>.safetensors and no index. Returns the file names written
  // (relative to `folder`), the index last.
  std::vector<std::string> write_sharded(const std::string& folder, uint64_t max_shard_bytes,
                                         const std::string& stem = "model") const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
    size_t nbytes;
    std::shared_ptr<const void> owner;
  };
  void write_entries(const std::string& path, std::vector<const Entry*> entries) const;

  std::vector<Entry> entries_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace gemkit
