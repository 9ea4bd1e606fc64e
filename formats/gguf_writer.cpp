#include "formats/gguf_writer.h"

#include <cstring>

#include "core/error.h"
#include "core/file_io.h"

namespace gemkit {

namespace {

constexpr uint64_t kAlignment = 32;  // GGUF's default general.alignment
// GGUF metadata value types (docs/design/formats.md).
constexpr uint32_t kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9, kU64 = 10;

template <typename T>
void put(std::vector<uint8_t>& out, T v) {  // little-endian host (x86-64, aarch64)
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// Strings in arrays: the same encoding as a string value (the non-template overload wins).
void put(std::vector<uint8_t>& out, const std::string& s) { put_string(out, s); }

uint64_t aligned(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

void GgufWriter::set_raw(const std::string& key, uint32_t type, std::vector<uint8_t> value) {
  std::vector<uint8_t> bytes;
  put<uint32_t>(bytes, type);
  bytes.insert(bytes.end(), value.begin(), value.end());
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(bytes);
      return;
    }
  kv_.push_back({key, std::move(bytes)});
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) { std::vector<uint8_t> b; put(b, v); set_raw(key, kU32, b); }
void GgufWriter::set_i32(const std::string& key, int32_t v) { std::vector<uint8_t> b; put(b, v); set_raw(key, kI32, b); }
void GgufWriter::set_u64(const std::string& key, uint64_t v) { std::vector<uint8_t> b; put(b, v); set_raw(key, kU64, b); }
void GgufWriter::set_f32(const std::string& key, float v) { std::vector<uint8_t> b; put(b, v); set_raw(key, kF32, b); }
void GgufWriter::set_bool(const std::string& key, bool v) { std::vector<uint8_t> b; put<uint8_t>(b, v ? 1 : 0); set_raw(key, kBool, b); }
void GgufWriter::set_string(const std::string& key, const std::string& v) { std::vector<uint8_t> b; put_string(b, v); set_raw(key, kString, b); }

template <typename T>
void GgufWriter::set_array(const std::string& key, uint32_t element_type, const std::vector<T>& v) {
  std::vector<uint8_t> b;
  put<uint32_t>(b, element_type);
  put<uint64_t>(b, v.size());
  for (const T& x : v) put(b, x);
  set_raw(key, kArray, b);
}

void GgufWriter::set_f32s(const std::string& key, const std::vector<float>& v) { set_array(key, kF32, v); }
void GgufWriter::set_i32s(const std::string& key, const std::vector<int32_t>& v) { set_array(key, kI32, v); }
void GgufWriter::set_strings(const std::string& key, const std::vector<std::string>& v) { set_array(key, kString, v); }

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, QuantType type,
                            std::vector<uint8_t> data) {
  if (shape.empty()) fail(name, "a GGUF tensor needs at least one dimension");
  for (const auto& t : tensors_)
    if (t.name == name) fail(name, "tensor added twice");
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  const size_t expected = static_cast<size_t>(rows) * quant_row_bytes(type, shape.back());
  if (data.size() != expected)
    fail(name, "expected " + std::to_string(expected) + " bytes of " + quant_type_name(type) + ", got " +
                   std::to_string(data.size()));
  tensors_.push_back({name, shape, type, std::move(data)});
}

std::vector<uint8_t> GgufWriter::header() const {
  std::vector<uint8_t> h;
  put<uint32_t>(h, 0x46554747u);  // "GGUF"
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, kv_.size());
  for (const auto& [key, value] : kv_) {
    put_string(h, key);
    h.insert(h.end(), value.begin(), value.end());
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(h, t.name);
    put<uint32_t>(h, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(h, static_cast<uint64_t>(*it));
    put<uint32_t>(h, static_cast<uint32_t>(t.type));
    put<uint64_t>(h, offset);
    offset = aligned(offset + t.data.size());
  }
  h.resize(aligned(h.size()), 0);
  return h;
}

uint64_t GgufWriter::file_size() const {
  uint64_t n = header().size();
  for (size_t i = 0; i < tensors_.size(); ++i)
    n += i + 1 < tensors_.size() ? aligned(tensors_[i].data.size()) : tensors_[i].data.size();
  return n;
}

void GgufWriter::write(const std::string& path, bool overwrite) const {
  if (!overwrite && file_exists(path)) fail(path, "exists; pass --force to replace it");
  const std::vector<uint8_t> h = header();
  write_file_atomic(path, [&](std::FILE* f) {
    write_all(f, h.data(), h.size(), path);
    static const uint8_t zeros[kAlignment] = {};
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& d = tensors_[i].data;
      write_all(f, d.data(), d.size(), path);
      if (i + 1 < tensors_.size()) write_all(f, zeros, aligned(d.size()) - d.size(), path);
    }
  });
}

}  // namespace gemkit
