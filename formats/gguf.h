// GGUF v3 reader (llama.cpp's single-file model format). Torch-free: the tokenizers, the edge
// runtime and the export checks all read GGUF files through this.
//
// The file is memory-mapped; metadata strings and array payloads are views into the map, so a
// GgufFile must outlive every GgufValue / string_view / tensor pointer taken from it.
// Everything is validated on open (magic, version, counts, string lengths, value types, tensor
// shapes, types, offsets and sizes against the file size), so later accessors never read out of
// bounds. Errors are gemkit::Error with "FILE: field: expected X, got Y" messages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/file_io.h"

namespace gemkit {

// Metadata value types, numbered as in the GGUF specification.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// ggml tensor element types that have a defined storage size (block elements and bytes).
struct GgmlTypeInfo {
  uint32_t id;
  const char* name;
  uint32_t block_elems;  // elements per block (1 for plain types)
  uint32_t block_bytes;  // bytes per block
};
// nullptr for ids that ggml never defined or has removed (4, 5, 31-33, 36-38, >= 43).
const GgmlTypeInfo* ggml_type_info(uint32_t type);
namespace ggml_type {
constexpr uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
                   Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, I8 = 24, I16 = 25,
                   I32 = 26, I64 = 27, F64 = 28, BF16 = 30;
}

class GgufFile;

// One metadata value: a scalar, a string, or an array (of scalars, strings or arrays).
class GgufValue {
 public:
  GgufType type() const { return type_; }
  bool is_array() const { return type_ == GgufType::ARRAY; }
  bool is_integer() const;  // any of U8..I64 (not BOOL)

  // Scalars. Integer accessors accept any integer type whose value fits; as_double also
  // accepts integers. They throw naming `key()` and the actual type when the type is wrong.
  int64_t as_int() const;
  uint64_t as_uint() const;
  double as_double() const;
  bool as_bool() const;
  std::string_view as_string() const;

  // Arrays.
  GgufType array_type() const;  // element type; throws if not an array
  size_t size() const;          // element count; throws if not an array
  std::string_view string_at(size_t i) const;     // array of STRING
  int64_t int_at(size_t i) const;                 // array of integers (any width) or BOOL
  double double_at(size_t i) const;               // array of F32/F64 or integers
  const GgufValue& array_at(size_t i) const;      // array of ARRAY
  std::vector<std::string_view> strings() const;  // whole array of STRING
  std::vector<int64_t> ints() const;
  std::vector<float> floats() const;
  // Raw little-endian payload of a numeric array (element_size() * size() bytes).
  const uint8_t* raw_data() const { return raw_; }

  const std::string& key() const { return *key_; }

 private:
  friend class GgufFile;
  friend struct GgufParser;
  GgufType type_ = GgufType::U8;
  GgufType elem_type_ = GgufType::U8;  // arrays only
  uint64_t bits_ = 0;                  // scalar payload (zero-extended little-endian)
  std::string_view str_;               // STRING
  const uint8_t* raw_ = nullptr;       // numeric arrays: first element
  uint64_t count_ = 0;                 // arrays
  std::vector<std::string_view> strs_;  // arrays of STRING
  std::vector<GgufValue> items_;        // arrays of ARRAY
  const std::string* key_ = nullptr;    // for error messages
  const std::string* path_ = nullptr;
  [[noreturn]] void type_error(const std::string& expected) const;
  void check_index(size_t i) const;
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // fastest-varying first (ggml order)
  uint32_t type = 0;           // ggml type id; ggml_type_info(type) is never null here
  uint64_t offset = 0;         // relative to the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
};

class GgufFile {
 public:
  // Opens, maps and validates `path`. Throws gemkit::Error naming the file and the field.
  explicit GgufFile(const std::string& path);
  GgufFile(GgufFile&&) = delete;  // values hold pointers into this object
  GgufFile(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section

  // Metadata in file order.
  const std::vector<GgufKeyValue>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  const GgufValue& get(std::string_view key) const;   // throws "FILE: KEY: missing"
  // Convenience for optional scalars.
  std::string get_string(std::string_view key, std::string_view fallback) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // Pointer to a tensor's bytes inside the map (n_bytes long; aligned to alignment()).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;

 private:
  friend struct GgufParser;
  std::string path_;
  MappedFile map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> kv_;
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace gemkit
