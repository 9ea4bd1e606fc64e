#include "formats/gguf.h"

#include <cstring>
#include <limits>

#include "core/error.h"
#include "formats/gguf_keys.h"

namespace gemkit {

namespace {

// Sizes per block from ggml-common.h (static_asserts there); ids that ggml removed stay empty so
// files using them are refused instead of misread.
const GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},    {40, "NVFP4", 64, 36},
    {41, "Q1_0", 128, 18},    {42, "Q2_0", 64, 18},
};

constexpr uint32_t kMaxDims = 8;         // ggml uses 4; leave room, refuse nonsense
constexpr uint32_t kMaxArrayDepth = 8;   // nested arrays; real files use depth 1
constexpr uint64_t kMaxStringBytes = 1ull << 30;

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the project targets little-endian hosts (x86-64, arm64)
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "invalid";
}

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  for (const auto& t : kGgmlTypes)
    if (t.id == type) return &t;
  return nullptr;
}

// ---------------------------------------------------------------- GgufValue

void GgufValue::type_error(const std::string& expected) const {
  std::string got = gguf_type_name(type_);
  if (type_ == GgufType::ARRAY) got += std::string(" of ") + gguf_type_name(elem_type_);
  fail((path_ ? *path_ : std::string("gguf")) + ": " + (key_ ? *key_ : std::string("?")),
       "expected " + expected + ", got " + got);
}

bool GgufValue::is_integer() const {
  switch (type_) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

static int64_t signed_value(GgufType t, uint64_t bits) {
  switch (t) {
    case GgufType::I8: return static_cast<int8_t>(bits);
    case GgufType::I16: return static_cast<int16_t>(bits);
    case GgufType::I32: return static_cast<int32_t>(bits);
    case GgufType::I64: return static_cast<int64_t>(bits);
    default: return static_cast<int64_t>(bits);
  }
}

static bool is_signed(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

int64_t GgufValue::as_int() const {
  if (!is_integer()) type_error("an integer");
  if (!is_signed(type_) && bits_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    type_error("an integer that fits int64");
  return signed_value(type_, bits_);
}

uint64_t GgufValue::as_uint() const {
  if (!is_integer()) type_error("an unsigned integer");
  if (is_signed(type_) && signed_value(type_, bits_) < 0) type_error("a non-negative integer");
  return is_signed(type_) ? static_cast<uint64_t>(signed_value(type_, bits_)) : bits_;
}

double GgufValue::as_double() const {
  if (type_ == GgufType::F32) {
    float f;
    uint32_t b = static_cast<uint32_t>(bits_);
    std::memcpy(&f, &b, 4);
    return f;
  }
  if (type_ == GgufType::F64) {
    double d;
    std::memcpy(&d, &bits_, 8);
    return d;
  }
  if (is_integer()) return is_signed(type_) ? double(signed_value(type_, bits_)) : double(bits_);
  type_error("a number");
}

bool GgufValue::as_bool() const {
  if (type_ != GgufType::BOOL) type_error("bool");
  return bits_ != 0;
}

std::string_view GgufValue::as_string() const {
  if (type_ != GgufType::STRING) type_error("string");
  return str_;
}

GgufType GgufValue::array_type() const {
  if (type_ != GgufType::ARRAY) type_error("array");
  return elem_type_;
}

size_t GgufValue::size() const {
  if (type_ != GgufType::ARRAY) type_error("array");
  return static_cast<size_t>(count_);
}

void GgufValue::check_index(size_t i) const {
  if (i >= count_)
    fail((path_ ? *path_ : std::string("gguf")) + ": " + (key_ ? *key_ : std::string("?")),
         "index " + std::to_string(i) + " out of range (size " + std::to_string(count_) + ")");
}

std::string_view GgufValue::string_at(size_t i) const {
  if (type_ != GgufType::ARRAY || elem_type_ != GgufType::STRING) type_error("array of string");
  check_index(i);
  return strs_[i];
}

int64_t GgufValue::int_at(size_t i) const {
  if (type_ != GgufType::ARRAY) type_error("array of integers");
  const size_t w = scalar_size(elem_type_);
  if (w == 0 || elem_type_ == GgufType::F32 || elem_type_ == GgufType::F64)
    type_error("array of integers");
  check_index(i);
  uint64_t bits = 0;
  std::memcpy(&bits, raw_ + i * w, w);
  if (elem_type_ == GgufType::U64 && bits > uint64_t(std::numeric_limits<int64_t>::max()))
    type_error("array of integers that fit int64");
  return signed_value(elem_type_, bits);
}

double GgufValue::double_at(size_t i) const {
  if (type_ != GgufType::ARRAY) type_error("array of numbers");
  if (elem_type_ == GgufType::F32) {
    check_index(i);
    return load_le<float>(raw_ + i * 4);
  }
  if (elem_type_ == GgufType::F64) {
    check_index(i);
    return load_le<double>(raw_ + i * 8);
  }
  return static_cast<double>(int_at(i));
}

const GgufValue& GgufValue::array_at(size_t i) const {
  if (type_ != GgufType::ARRAY || elem_type_ != GgufType::ARRAY) type_error("array of arrays");
  check_index(i);
  return items_[i];
}

std::vector<std::string_view> GgufValue::strings() const {
  if (type_ != GgufType::ARRAY || elem_type_ != GgufType::STRING) type_error("array of string");
  return strs_;
}

std::vector<int64_t> GgufValue::ints() const {
  std::vector<int64_t> out(size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = int_at(i);
  return out;
}

std::vector<float> GgufValue::floats() const {
  std::vector<float> out(size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(double_at(i));
  return out;
}

// ---------------------------------------------------------------- parser

struct GgufParser {
  GgufFile& f;
  const uint8_t* base;
  uint64_t size;
  uint64_t pos = 0;

  [[noreturn]] void truncated(const std::string& field, uint64_t need) {
    fail(f.path_ + ": " + field, "file truncated: need " + std::to_string(need) +
                                     " bytes at offset " + std::to_string(pos) + ", file has " +
                                     std::to_string(size));
  }
  void need(const std::string& field, uint64_t n) {
    if (n > size - pos) truncated(field, n);
  }
  template <typename T>
  T read(const std::string& field) {
    need(field, sizeof(T));
    T v = load_le<T>(base + pos);
    pos += sizeof(T);
    return v;
  }
  std::string_view read_string(const std::string& field) {
    const uint64_t n = read<uint64_t>(field);
    if (n > kMaxStringBytes)
      fail(f.path_ + ": " + field,
           "expected a string length <= 1 GiB, got " + std::to_string(n));
    need(field, n);
    std::string_view s(reinterpret_cast<const char*>(base + pos), static_cast<size_t>(n));
    pos += n;
    return s;
  }

  void read_value(GgufValue& v, GgufType type, const std::string& field, uint32_t depth) {
    v.type_ = type;
    v.path_ = &f.path_;
    if (type == GgufType::STRING) {
      v.str_ = read_string(field);
      return;
    }
    if (type != GgufType::ARRAY) {
      const size_t w = scalar_size(type);
      need(field, w);
      std::memcpy(&v.bits_, base + pos, w);
      pos += w;
      if (type == GgufType::BOOL && v.bits_ > 1)
        fail(f.path_ + ": " + field, "expected bool 0 or 1, got " + std::to_string(v.bits_));
      return;
    }
    if (depth >= kMaxArrayDepth)
      fail(f.path_ + ": " + field, "expected arrays nested at most " +
                                       std::to_string(kMaxArrayDepth) + " deep");
    const uint32_t et = read<uint32_t>(field + " (array type)");
    if (!valid_type(et))
      fail(f.path_ + ": " + field,
           "expected an array element type 0..12, got " + std::to_string(et));
    v.elem_type_ = static_cast<GgufType>(et);
    const uint64_t n = read<uint64_t>(field + " (array length)");
    // Every element takes at least this many bytes, which bounds absurd counts before any
    // allocation happens.
    const uint64_t min_elem = v.elem_type_ == GgufType::STRING  ? 8
                              : v.elem_type_ == GgufType::ARRAY ? 12
                                                                : scalar_size(v.elem_type_);
    if (n > (size - pos) / min_elem)
      fail(f.path_ + ": " + field, "array length " + std::to_string(n) + " of " +
                                       gguf_type_name(v.elem_type_) +
                                       " exceeds the remaining file size (truncated or corrupt)");
    v.count_ = n;
    if (v.elem_type_ == GgufType::STRING) {
      v.strs_.reserve(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) v.strs_.push_back(read_string(field));
    } else if (v.elem_type_ == GgufType::ARRAY) {
      v.items_.resize(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i)
        read_value(v.items_[i], GgufType::ARRAY, field + "[" + std::to_string(i) + "]", depth + 1);
    } else {
      v.raw_ = base + pos;
      pos += n * min_elem;
    }
  }

  static void set_key(GgufValue& v, const std::string* key) {
    v.key_ = key;
    for (auto& item : v.items_) set_key(item, key);
  }

  void parse() {
    if (size < 4) truncated("magic", 4);
    if (std::memcmp(base, "GGUF", 4) != 0) {
      char got[32];
      std::snprintf(got, sizeof got, "%02x %02x %02x %02x", base[0], base[1], base[2], base[3]);
      fail(f.path_ + ": magic", std::string("expected \"GGUF\" (47 47 55 46), got ") + got);
    }
    pos = 4;
    f.version_ = read<uint32_t>("version");
    // v2 and v3 share the little-endian layout (v3 only added big-endian files); v1 used 32-bit
    // counts and is long obsolete.
    if (f.version_ != 2 && f.version_ != 3)
      fail(f.path_ + ": version", "expected 2 or 3, got " + std::to_string(f.version_));
    const uint64_t n_tensors = read<uint64_t>("tensor count");
    const uint64_t n_kv = read<uint64_t>("metadata count");
    // A key-value pair needs >= 8 (key length) + 4 (type) + 1 bytes; a tensor info >= 8+4+4+8.
    if (n_kv > (size - pos) / 13)
      fail(f.path_ + ": metadata count",
           "expected a count that fits the file (truncated or corrupt?), got " + std::to_string(n_kv));
    if (n_tensors > (size - pos) / 24)
      fail(f.path_ + ": tensor count",
           "expected a count that fits the file (truncated or corrupt?), got " + std::to_string(n_tensors));

    f.kv_.resize(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
      auto& kv = f.kv_[i];
      const std::string idx = "metadata[" + std::to_string(i) + "]";
      kv.key = std::string(read_string(idx + " key"));
      const uint32_t t = read<uint32_t>(kv.key + " (value type)");
      if (!valid_type(t))
        fail(f.path_ + ": " + kv.key, "expected a value type 0..12, got " + std::to_string(t));
      read_value(kv.value, static_cast<GgufType>(t), kv.key, 0);
    }
    for (size_t i = 0; i < f.kv_.size(); ++i) {
      set_key(f.kv_[i].value, &f.kv_[i].key);
      if (!f.kv_index_.emplace(f.kv_[i].key, i).second)
        fail(f.path_ + ": " + f.kv_[i].key, "duplicate metadata key");
    }

    if (const GgufValue* a = f.find(gguf_key::kAlignment)) {
      if (a->type() != GgufType::U32) a->type_error("u32");
      const uint64_t al = a->as_uint();
      if (al == 0 || (al & (al - 1)) != 0)
        fail(f.path_ + ": " + gguf_key::kAlignment,
             "expected a power of two, got " + std::to_string(al));
      f.alignment_ = al;
    }

    f.tensors_.resize(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      auto& t = f.tensors_[i];
      const std::string idx = "tensor[" + std::to_string(i) + "]";
      t.name = std::string(read_string(idx + " name"));
      const std::string field = "tensor " + t.name;
      const uint32_t nd = read<uint32_t>(field + " n_dims");
      if (nd > kMaxDims)
        fail(f.path_ + ": " + field,
             "expected n_dims <= " + std::to_string(kMaxDims) + ", got " + std::to_string(nd));
      t.dims.resize(nd);
      uint64_t ne = 1;
      for (uint32_t d = 0; d < nd; ++d) {
        t.dims[d] = read<uint64_t>(field + " dims");
        if (t.dims[d] > uint64_t(std::numeric_limits<int64_t>::max()) ||
            (t.dims[d] != 0 && ne > uint64_t(std::numeric_limits<int64_t>::max()) / t.dims[d]))
          fail(f.path_ + ": " + field, "element count overflows int64");
        ne *= t.dims[d];
      }
      t.n_elements = ne;
      t.type = read<uint32_t>(field + " type");
      const GgmlTypeInfo* ti = ggml_type_info(t.type);
      if (!ti)
        fail(f.path_ + ": " + field,
             "expected a known ggml type, got " + std::to_string(t.type));
      if (nd > 0 && t.dims[0] % ti->block_elems != 0)
        fail(f.path_ + ": " + field, std::string("expected dims[0] divisible by the ") + ti->name +
                                         " block size " + std::to_string(ti->block_elems) +
                                         ", got " + std::to_string(t.dims[0]));
      // The byte count can overflow even when the element count does not (2^62 f32 elements).
      if (ne / ti->block_elems > uint64_t(std::numeric_limits<int64_t>::max()) / ti->block_bytes)
        fail(f.path_ + ": " + field, "dims: " + std::to_string(ne) + " elements of " + ti->name +
                                         " are more bytes than any file holds");
      t.n_bytes = ne / ti->block_elems * ti->block_bytes;
      t.offset = read<uint64_t>(field + " offset");
      if (t.offset % f.alignment_ != 0)
        fail(f.path_ + ": " + field, "expected an offset aligned to " +
                                         std::to_string(f.alignment_) + ", got " +
                                         std::to_string(t.offset));
    }
    const uint64_t al = f.alignment_;
    f.data_offset_ = (pos + al - 1) / al * al;
    for (size_t i = 0; i < f.tensors_.size(); ++i) {
      auto& t = f.tensors_[i];
      if (!f.tensor_index_.emplace(t.name, i).second)
        fail(f.path_ + ": tensor " + t.name, "duplicate tensor name");
      if (f.data_offset_ > size || t.offset > size - f.data_offset_ ||
          t.n_bytes > size - f.data_offset_ - t.offset)
        fail(f.path_ + ": tensor " + t.name,
             "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.n_bytes) +
                 ") lies outside the file's data section (" +
                 std::to_string(f.data_offset_ > size ? 0 : size - f.data_offset_) +
                 " bytes): truncated or corrupt");
    }
  }
};

GgufFile::GgufFile(const std::string& path) : path_(path), map_(path) {
  GgufParser p{*this, map_.data(), map_.size()};
  p.parse();
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const GgufValue& GgufFile::get(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path_ + ": " + std::string(key), "missing");
  return *v;
}

std::string GgufFile::get_string(std::string_view key, std::string_view fallback) const {
  const GgufValue* v = find(key);
  return std::string(v ? v->as_string() : fallback);
}

int64_t GgufFile::get_int(std::string_view key, int64_t fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_int() : fallback;
}

bool GgufFile::get_bool(std::string_view key, bool fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_bool() : fallback;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return map_.data() + data_offset_ + t.offset;
}

}  // namespace gemkit
