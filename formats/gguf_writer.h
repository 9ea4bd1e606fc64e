// GGUF v3 writer (docs/design/formats.md): metadata in insertion order, tensors with ggml dims
// (fastest-varying first), data aligned to 32 bytes. The file is written atomically (a
// temporary file renamed into place) and an existing file is only replaced when asked.
// Torch-free; formats/gguf.h reads what this writes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "formats/block_quant.h"

namespace gemkit {

class GgufWriter {
 public:
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_strings(const std::string& key, const std::vector<std::string>& v);
  void set_f32s(const std::string& key, const std::vector<float>& v);
  void set_i32s(const std::string& key, const std::vector<int32_t>& v);

  // `shape` in PyTorch order ([out, in] for a weight); stored reversed, as GGUF wants. `data`
  // holds the rows of the last dimension in `type` (quantize_row's output); its size is checked.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, QuantType type, std::vector<uint8_t> data);

  // Throws gemkit::Error naming `path` when it exists and overwrite is false, or on I/O errors.
  void write(const std::string& path, bool overwrite) const;
  // Bytes the file will have.
  uint64_t file_size() const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    QuantType type;
    std::vector<uint8_t> data;
  };
  void set_raw(const std::string& key, uint32_t type, std::vector<uint8_t> value);
  template <typename T>
  void set_array(const std::string& key, uint32_t element_type, const std::vector<T>& v);
  std::vector<uint8_t> header() const;  // everything before the tensor data, padded
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;  // key -> type + value bytes
  std::vector<Tensor> tensors_;
};

}  // namespace gemkit
