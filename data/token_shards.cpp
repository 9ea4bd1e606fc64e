#include "data/token_shards.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizers/tokenizer.h"

static_assert(std::is_same<hid_t, int64_t>::value, "HDF5 >= 1.10: hid_t is int64_t");

namespace gemkit {

namespace {

// HDF5 prints its own error stack to stderr by default; gemkit reports its own messages.
void silence_hdf5() {
  static bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// Closes an HDF5 handle of any kind when it goes out of scope.
struct Handle {
  hid_t id = -1;
  herr_t (*close)(hid_t) = nullptr;
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0 && close) close(id);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id; }
};

// ---- writing ----

void check(herr_t status, const std::string& where, const std::string& what) {
  if (status < 0) fail(where, what);
}

// Strings are fixed-length (null-padded UTF-8), never variable-length: a variable-length string
// lives in HDF5's global heap, and libhdf5 1.10 can loop for good reading a damaged one (found by
// the token_shard fuzz target, docs/reliability.md). A fixed-length string is read like any
// other small array, with its size checked first.
hid_t string_type(size_t bytes) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, bytes);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void write_strings(hid_t obj, const char* name, const std::vector<std::string>& values, hid_t space,
                   const std::string& where) {
  size_t width = 1;  // HDF5 has no zero-width string type
  for (const auto& v : values) width = std::max(width, v.size());
  std::vector<char> packed(values.size() * width, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), &packed[i * width]);
  Handle type(string_type(width), H5Tclose);
  Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(attr < 0 ? -1 : (values.empty() ? 0 : H5Awrite(attr, type, packed.data())), where,
        std::string("cannot write attribute ") + name);
}

void write_string_attr(hid_t obj, const char* name, const std::string& value, const std::string& where) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  write_strings(obj, name, {value}, space, where);
}

void write_strings_attr(hid_t obj, const char* name, const std::vector<std::string>& values,
                        const std::string& where) {
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  write_strings(obj, name, values, space, where);
}

template <typename T>
hid_t native_type() {
  if (std::is_same<T, uint8_t>::value) return H5T_NATIVE_UINT8;
  return std::is_same<T, int64_t>::value ? H5T_NATIVE_INT64 : H5T_NATIVE_INT32;
}
template <typename T>
hid_t file_type() {
  if (std::is_same<T, uint8_t>::value) return H5T_STD_U8LE;
  return std::is_same<T, int64_t>::value ? H5T_STD_I64LE : H5T_STD_I32LE;
}

template <typename T>
void write_int_attr(hid_t obj, const char* name, T value, const std::string& where) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, file_type<T>(), space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(attr < 0 ? -1 : H5Awrite(attr, native_type<T>(), &value), where,
        std::string("cannot write attribute ") + name);
}

template <typename T>
void write_dataset(hid_t file, const char* name, const std::vector<T>& values, hsize_t chunk,
                   const std::string& where) {
  hsize_t n = values.size();
  // Unlimited maximum size: a fixed-size dataset may not have chunks larger than itself, and
  // small shards (tests, validation splits) keep the same 64K-element chunking as large ones.
  hsize_t max = H5S_UNLIMITED;
  Handle space(H5Screate_simple(1, &n, &max), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  check(H5Pset_chunk(dcpl, 1, &chunk), where, std::string("cannot chunk ") + name);
  // No modification times in the file: the same input gives the same bytes.
  check(H5Pset_obj_track_times(dcpl, false), where, "cannot turn off time tracking");
  Handle ds(H5Dcreate2(file, name, file_type<T>(), space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose);
  if (ds < 0) fail(where, std::string("cannot create dataset /") + name);
  if (n > 0)
    check(H5Dwrite(ds, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), where,
          std::string("cannot write dataset /") + name);
}

// ---- reading ----

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

// Reads a string attribute of any shape (scalar or 1-D) as its elements, refusing a variable-length
// string (see string_type) and any attribute larger than a shard's strings could need.
std::vector<std::string> read_strings(hid_t obj, const char* name, const std::string& where) {
  if (!has_attr(obj, name)) fail(where, std::string("missing attribute ") + name);
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (attr < 0) fail(where, std::string("cannot open attribute ") + name);
  Handle ftype(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(ftype) != H5T_STRING) fail(where, std::string("attribute ") + name + " is not a string");
  if (H5Tis_variable_str(ftype) != 0)
    fail(where, std::string("attribute ") + name +
                    " is a variable-length string (expected fixed-length; re-run gemkit data prepare)");
  Handle space(H5Aget_space(attr), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  const size_t width = H5Tget_size(ftype);
  constexpr size_t kMaxBytes = size_t(1) << 20;  // paths, hashes and a few hundred names fit easily
  if (n < 0 || width == 0 || width > kMaxBytes || size_t(n) > kMaxBytes / width)
    fail(where, std::string("attribute ") + name + " has " + std::to_string(n) + " strings of " +
                    std::to_string(width) + " bytes (at most 1 MiB in all)");
  std::vector<char> packed(size_t(n) * width);
  Handle type(string_type(width), H5Tclose);
  if (n > 0) check(H5Aread(attr, type, packed.data()), where, std::string("cannot read attribute ") + name);
  std::vector<std::string> out;
  for (size_t i = 0; i < size_t(n); ++i) {
    const char* p = &packed[i * width];
    out.emplace_back(p, strnlen(p, width));
  }
  return out;
}

std::string read_string_attr(hid_t obj, const char* name, const std::string& where) {
  std::vector<std::string> v = read_strings(obj, name, where);
  if (v.size() != 1) fail(where, std::string("attribute ") + name + " holds " + std::to_string(v.size()) +
                                     " strings, expected one");
  return v[0];
}

template <typename T>
T read_int_attr(hid_t obj, const char* name, const std::string& where) {
  if (!has_attr(obj, name)) fail(where, std::string("missing attribute ") + name);
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (attr < 0) fail(where, std::string("cannot open attribute ") + name);
  Handle ftype(H5Aget_type(attr), H5Tclose);
  Handle space(H5Aget_space(attr), H5Sclose);
  // One integer: anything else would be read into (and past) the single value below.
  if (H5Tget_class(ftype) != H5T_INTEGER || H5Sget_simple_extent_npoints(space) != 1)
    fail(where, std::string("attribute ") + name + " is not a single integer");
  T value{};
  check(H5Aread(attr, native_type<T>(), &value), where, std::string("cannot read attribute ") + name);
  return value;
}

// Opens /name, checks it is a 1-D integer dataset of `bytes`-wide elements, returns its length.
hid_t open_dataset(hid_t file, const char* name, size_t bytes, hid_t dapl, int64_t& length,
                   const std::string& where) {
  const std::string ds_where = where + ": /" + name;
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) fail(ds_where, "missing dataset");
  hid_t ds = H5Dopen2(file, name, dapl);
  if (ds < 0) fail(ds_where, "cannot open dataset");
  Handle type(H5Dget_type(ds), H5Tclose);
  Handle space(H5Dget_space(ds), H5Sclose);
  if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != bytes ||
      H5Sget_simple_extent_ndims(space) != 1) {
    H5Dclose(ds);
    fail(ds_where, "expected a 1-D int" + std::to_string(bytes * 8) + " dataset");
  }
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  // A dataset may declare more entries than it stores (unwritten chunks read as zeros); a shard
  // never does, so the declared length is checked against the bytes stored before anything is
  // sized by it.
  const hsize_t stored = H5Dget_storage_size(ds);
  if (n > stored / bytes) {
    H5Dclose(ds);
    fail(ds_where, "declares " + std::to_string(n) + " entries but stores " + std::to_string(stored) + " bytes");
  }
  // HDF5 sizes its read buffers by the chunk size the file declares, and would inflate a filtered
  // (compressed) chunk to any size: shards are written uncompressed in chunks of at most
  // kTokenShardChunk entries, and nothing else is read.
  Handle dcpl(H5Dget_create_plist(ds), H5Pclose);
  hsize_t chunk = 0;
  const H5D_layout_t layout = H5Pget_layout(dcpl);
  const bool chunk_ok = layout != H5D_CHUNKED ||
                        (H5Pget_chunk(dcpl, 1, &chunk) == 1 && chunk > 0 && chunk <= hsize_t(kTokenShardChunk));
  if (!chunk_ok || H5Pget_nfilters(dcpl) != 0) {
    H5Dclose(ds);
    fail(ds_where, "expected an uncompressed dataset in chunks of at most " + std::to_string(kTokenShardChunk) +
                       " entries (as gemkit data prepare writes)");
  }
  length = int64_t(n);
  return ds;
}

template <typename T>
std::vector<T> read_whole(hid_t file, const char* name, int64_t expected, const std::string& where) {
  int64_t n = 0;
  Handle ds(open_dataset(file, name, sizeof(T), H5P_DEFAULT, n, where), H5Dclose);
  if (expected >= 0 && n != expected)
    fail(where + ": /" + name, "has " + std::to_string(n) + " entries, expected " + std::to_string(expected));
  std::vector<T> out(static_cast<size_t>(n));
  if (n > 0)
    check(H5Dread(ds, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
          where + ": /" + name, "read failed");
  return out;
}

// Appends ds[begin, begin + count) to out; false (out unchanged) when HDF5 fails to read.
template <typename T>
bool read_range(hid_t ds, int64_t begin, int64_t count, std::vector<T>& out) {
  if (count == 0) return true;
  const size_t at = out.size();
  out.resize(at + size_t(count));
  hsize_t start = hsize_t(begin), n = hsize_t(count);
  Handle file_space(H5Dget_space(ds), H5Sclose);
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &start, nullptr, &n, nullptr);
  Handle mem_space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  if (H5Dread(ds, native_type<T>(), mem_space, file_space, H5P_DEFAULT, out.data() + at) < 0) {
    out.resize(at);
    return false;
  }
  return true;
}

}  // namespace

void ShardData::add_document(const std::vector<int32_t>& ids, int32_t domain, int32_t label,
                             const std::vector<uint8_t>& mask) {
  if (!mask.empty() && mask.size() != ids.size())
    fail("token shard", "document " + std::to_string(doc_domain.size()) + ": " + std::to_string(mask.size()) +
                            " mask entries for " + std::to_string(ids.size()) + " tokens");
  // The first chat example gives every earlier token a 1 (trained, as without a mask). From
  // then on doc_chat has an entry per document (it is empty before, also when the first
  // document is the chat example).
  const bool masking = !mask.empty() || !doc_chat.empty();
  if (masking && doc_chat.empty()) {
    loss_mask.assign(tokens.size(), 1);
    doc_chat.assign(doc_domain.size(), 0);
  }
  if (masking) {
    if (mask.empty()) loss_mask.insert(loss_mask.end(), ids.size(), 1);
    else loss_mask.insert(loss_mask.end(), mask.begin(), mask.end());
    doc_chat.push_back(mask.empty() ? 0 : 1);
  }
  tokens.insert(tokens.end(), ids.begin(), ids.end());
  doc_offsets.push_back(int64_t(tokens.size()));
  doc_domain.push_back(domain);
  doc_label.push_back(label);
}

void write_token_shard(const std::string& path, ShardData data) {
  silence_hdf5();
  ShardInfo& info = data.info;
  const size_t n_docs = data.doc_domain.size();
  if (data.doc_offsets.size() != n_docs + 1 || data.doc_label.size() != n_docs)
    fail(path, "doc_offsets / doc_domain / doc_label sizes disagree");
  if (data.doc_offsets.front() != 0 || data.doc_offsets.back() != int64_t(data.tokens.size()))
    fail(path, "doc_offsets must start at 0 and end at the token count");
  for (size_t i = 0; i < n_docs; ++i) {
    if (data.doc_offsets[i + 1] < data.doc_offsets[i]) fail(path, "doc_offsets not monotone");
    if (data.doc_domain[i] < 0 || size_t(data.doc_domain[i]) >= info.domain_names.size())
      fail(path, "document " + std::to_string(i) + ": domain id " + std::to_string(data.doc_domain[i]) +
                     " has no name in domain_names");
    if (data.doc_label[i] < -1 || (data.doc_label[i] >= 0 && size_t(data.doc_label[i]) >= info.label_names.size()))
      fail(path, "document " + std::to_string(i) + ": label id " + std::to_string(data.doc_label[i]) +
                     " has no name in label_names");
  }
  if (!data.loss_mask.empty() && data.loss_mask.size() != data.tokens.size())
    fail(path, "loss_mask has " + std::to_string(data.loss_mask.size()) + " entries for " +
                   std::to_string(data.tokens.size()) + " tokens");
  for (uint8_t m : data.loss_mask)
    if (m > 1) fail(path, "loss_mask entries must be 0 or 1, got " + std::to_string(m));
  if (data.doc_chat.size() != (data.loss_mask.empty() ? 0 : n_docs))
    fail(path, "doc_chat must hold one entry per document when there is a loss_mask");
  for (int32_t id : data.tokens)
    if (id < 0 || (info.vocab_size > 0 && id >= info.vocab_size))
      fail(path, "token id " + std::to_string(id) + " outside the vocabulary of " +
                     std::to_string(info.vocab_size));
  info.format_version = kTokenShardFormatVersion;
  info.n_docs = int64_t(n_docs);
  info.n_tokens = int64_t(data.tokens.size());

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (file < 0) fail(tmp, "cannot create HDF5 file");
    write_dataset(file, "tokens", data.tokens, hsize_t(kTokenShardChunk), tmp);
    write_dataset(file, "doc_offsets", data.doc_offsets, 8192, tmp);
    write_dataset(file, "doc_domain", data.doc_domain, 16384, tmp);
    write_dataset(file, "doc_label", data.doc_label, 16384, tmp);
    if (!data.loss_mask.empty()) {
      write_dataset(file, "loss_mask", data.loss_mask, hsize_t(kTokenShardChunk), tmp);
      write_dataset(file, "doc_chat", data.doc_chat, 16384, tmp);
    }
    write_string_attr(file, "format", "gemkit-token-shard", tmp);
    write_int_attr<int32_t>(file, "format_version", info.format_version, tmp);
    write_string_attr(file, "tokenizer_kind", info.tokenizer_kind, tmp);
    write_string_attr(file, "tokenizer_path", info.tokenizer_path, tmp);
    write_string_attr(file, "tokenizer_hash", info.tokenizer_hash, tmp);
    write_int_attr<int64_t>(file, "tokenizer_vocab_size", info.vocab_size, tmp);
    write_int_attr<int32_t>(file, "tokenizer_bos_id", info.bos_id, tmp);
    write_int_attr<int32_t>(file, "tokenizer_eos_id", info.eos_id, tmp);
    write_int_attr<int32_t>(file, "tokenizer_pad_id", info.pad_id, tmp);
    write_int_attr<int32_t>(file, "tokenizer_unk_id", info.unk_id, tmp);
    write_int_attr<int32_t>(file, "tokenizer_cls_id", info.cls_id, tmp);
    write_int_attr<int32_t>(file, "tokenizer_sep_id", info.sep_id, tmp);
    write_int_attr<int32_t>(file, "tokenizer_mask_id", info.mask_id, tmp);
    write_int_attr<int32_t>(file, "tokenizer_add_bos", info.add_bos ? 1 : 0, tmp);
    write_int_attr<int32_t>(file, "tokenizer_add_eos", info.add_eos ? 1 : 0, tmp);
    write_string_attr(file, "source", info.source, tmp);
    write_string_attr(file, "licence", info.licence, tmp);
    write_string_attr(file, "split", info.split, tmp);
    write_strings_attr(file, "domain_names", info.domain_names, tmp);
    write_strings_attr(file, "label_names", info.label_names, tmp);
    write_int_attr<int64_t>(file, "n_docs", info.n_docs, tmp);
    write_int_attr<int64_t>(file, "n_tokens", info.n_tokens, tmp);
    check(H5Fflush(file, H5F_SCOPE_GLOBAL), tmp, "flush failed");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, "cannot rename the temporary shard into place");
  }
}

TokenShard::TokenShard(const std::string& path, size_t chunk_cache_bytes) : path_(path) {
  silence_hdf5();
  if (!file_exists(path)) fail(path, "no such token shard");
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "not an HDF5 file");
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) fail(path, "cannot open HDF5 file");
  try {
    if (!has_attr(file_, "format_version") || !has_attr(file_, "format"))
      fail(path, "not a gemkit token shard (no format / format_version attribute)");
    // The version first: shards of format 1 hold variable-length strings, which are not read.
    info_.format_version = read_int_attr<int32_t>(file_, "format_version", path);
    if (info_.format_version < kTokenShardOldestReadable || info_.format_version > kTokenShardFormatVersion)
      fail(path, "format_version " + std::to_string(info_.format_version) + " is not supported (expected " +
                     std::to_string(kTokenShardOldestReadable) + " to " + std::to_string(kTokenShardFormatVersion) +
                     "); re-run gemkit data prepare (or gemkit data suite build)");
    if (read_string_attr(file_, "format", path) != "gemkit-token-shard")
      fail(path, "format attribute is not gemkit-token-shard");
    info_.tokenizer_kind = read_string_attr(file_, "tokenizer_kind", path);
    info_.tokenizer_path = read_string_attr(file_, "tokenizer_path", path);
    info_.tokenizer_hash = read_string_attr(file_, "tokenizer_hash", path);
    info_.vocab_size = read_int_attr<int64_t>(file_, "tokenizer_vocab_size", path);
    info_.bos_id = read_int_attr<int32_t>(file_, "tokenizer_bos_id", path);
    info_.eos_id = read_int_attr<int32_t>(file_, "tokenizer_eos_id", path);
    info_.pad_id = read_int_attr<int32_t>(file_, "tokenizer_pad_id", path);
    info_.unk_id = read_int_attr<int32_t>(file_, "tokenizer_unk_id", path);
    info_.cls_id = read_int_attr<int32_t>(file_, "tokenizer_cls_id", path);
    info_.sep_id = read_int_attr<int32_t>(file_, "tokenizer_sep_id", path);
    info_.mask_id = read_int_attr<int32_t>(file_, "tokenizer_mask_id", path);
    info_.add_bos = read_int_attr<int32_t>(file_, "tokenizer_add_bos", path) != 0;
    info_.add_eos = read_int_attr<int32_t>(file_, "tokenizer_add_eos", path) != 0;
    info_.source = read_string_attr(file_, "source", path);
    info_.licence = read_string_attr(file_, "licence", path);
    info_.split = read_string_attr(file_, "split", path);
    info_.domain_names = read_strings(file_, "domain_names", path);
    info_.label_names = read_strings(file_, "label_names", path);

    // A chunk cache that holds many 256 KB chunks: without it every random read of a document
    // goes back to the file (HDF5's default cache is 1 MB, docs/design/toolchain.md).
    Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    check(H5Pset_chunk_cache(dapl, 12421, chunk_cache_bytes, 1.0), path, "cannot set the chunk cache");
    int64_t n_tokens = 0;
    tokens_ = open_dataset(file_, "tokens", sizeof(int32_t), dapl, n_tokens, path);
    doc_offsets_ = read_whole<int64_t>(file_, "doc_offsets", -1, path);
    if (doc_offsets_.empty()) fail(path + ": /doc_offsets", "empty (needs n_docs + 1 entries, starting with 0)");
    const int64_t n_docs = int64_t(doc_offsets_.size()) - 1;
    doc_domain_ = read_whole<int32_t>(file_, "doc_domain", n_docs, path);
    doc_label_ = read_whole<int32_t>(file_, "doc_label", n_docs, path);
    if (doc_offsets_.front() != 0) fail(path + ": /doc_offsets", "must start at 0");
    for (int64_t i = 0; i < n_docs; ++i)
      if (doc_offsets_[size_t(i) + 1] < doc_offsets_[size_t(i)])
        fail(path + ": /doc_offsets", "not monotone at document " + std::to_string(i));
    if (doc_offsets_.back() != n_tokens)
      fail(path + ": /doc_offsets", "ends at " + std::to_string(doc_offsets_.back()) +
                                        " but /tokens has " + std::to_string(n_tokens) + " entries");
    for (int64_t i = 0; i < n_docs; ++i) {
      int32_t d = doc_domain_[size_t(i)], l = doc_label_[size_t(i)];
      if (d < 0 || size_t(d) >= info_.domain_names.size())
        fail(path + ": /doc_domain", "document " + std::to_string(i) + " has domain id " +
                                         std::to_string(d) + " outside domain_names");
      if (l < -1 || (l >= 0 && size_t(l) >= info_.label_names.size()))
        fail(path + ": /doc_label", "document " + std::to_string(i) + " has label id " +
                                        std::to_string(l) + " outside label_names");
    }
    if (H5Lexists(file_, "loss_mask", H5P_DEFAULT) > 0) {
      int64_t n_mask = 0;
      loss_mask_ = open_dataset(file_, "loss_mask", sizeof(uint8_t), dapl, n_mask, path);
      if (n_mask != n_tokens)
        fail(path + ": /loss_mask", "has " + std::to_string(n_mask) + " entries but /tokens has " +
                                        std::to_string(n_tokens));
      doc_chat_ = read_whole<uint8_t>(file_, "doc_chat", n_docs, path);
    }
    info_.n_docs = n_docs;
    info_.n_tokens = n_tokens;
    if (has_attr(file_, "n_tokens") && read_int_attr<int64_t>(file_, "n_tokens", path) != n_tokens)
      fail(path, "attribute n_tokens disagrees with /tokens");
  } catch (...) {
    if (tokens_ >= 0) H5Dclose(tokens_);
    if (loss_mask_ >= 0) H5Dclose(loss_mask_);
    H5Fclose(file_);
    throw;
  }
}

TokenShard::~TokenShard() {
  if (tokens_ >= 0) H5Dclose(tokens_);
  if (loss_mask_ >= 0) H5Dclose(loss_mask_);
  if (file_ >= 0) H5Fclose(file_);
}

TokenShard::TokenShard(TokenShard&& o) noexcept
    : path_(std::move(o.path_)),
      info_(std::move(o.info_)),
      doc_offsets_(std::move(o.doc_offsets_)),
      doc_domain_(std::move(o.doc_domain_)),
      doc_label_(std::move(o.doc_label_)),
      doc_chat_(std::move(o.doc_chat_)),
      file_(o.file_),
      tokens_(o.tokens_),
      loss_mask_(o.loss_mask_) {
  o.file_ = o.tokens_ = o.loss_mask_ = -1;
}

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this != &o) {
    if (tokens_ >= 0) H5Dclose(tokens_);
    if (loss_mask_ >= 0) H5Dclose(loss_mask_);
    if (file_ >= 0) H5Fclose(file_);
    path_ = std::move(o.path_);
    info_ = std::move(o.info_);
    doc_offsets_ = std::move(o.doc_offsets_);
    doc_domain_ = std::move(o.doc_domain_);
    doc_label_ = std::move(o.doc_label_);
    doc_chat_ = std::move(o.doc_chat_);
    file_ = o.file_;
    tokens_ = o.tokens_;
    loss_mask_ = o.loss_mask_;
    o.file_ = o.tokens_ = o.loss_mask_ = -1;
  }
  return *this;
}

int64_t TokenShard::doc_length(int64_t doc) const {
  if (doc < 0 || doc >= n_docs()) fail(path_, "document " + std::to_string(doc) + " out of range");
  return doc_offsets_[size_t(doc) + 1] - doc_offsets_[size_t(doc)];
}

void TokenShard::read_tokens(int64_t begin, int64_t count, std::vector<int32_t>& out) const {
  if (begin < 0 || count < 0 || begin + count > n_tokens())
    fail(path_ + ": /tokens", "read of [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                                  ") outside " + std::to_string(n_tokens()) + " tokens");
  const size_t at = out.size();
  if (!read_range(tokens_, begin, count, out)) fail(path_ + ": /tokens", "read failed");
  // A damaged or hand-made shard must not reach the embedding table with an id it lacks (the
  // writer checks ids, but a reader cannot trust the file it is given).
  for (size_t i = at; i < out.size(); ++i)
    if (out[i] < 0 || (info_.vocab_size > 0 && out[i] >= info_.vocab_size)) {
      const int32_t id = out[i];
      out.resize(at);
      fail(path_ + ": /tokens[" + std::to_string(begin + int64_t(i - at)) + "]",
           "token id " + std::to_string(id) + " outside the vocabulary [0, " + std::to_string(info_.vocab_size) + ")");
    }
}

void TokenShard::read_loss_mask(int64_t begin, int64_t count, std::vector<uint8_t>& out) const {
  if (begin < 0 || count < 0 || begin + count > n_tokens())
    fail(path_ + ": /loss_mask", "read of [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                                     ") outside " + std::to_string(n_tokens()) + " tokens");
  if (loss_mask_ < 0) {
    out.insert(out.end(), size_t(count), 1);
    return;
  }
  const size_t at = out.size();
  if (!read_range(loss_mask_, begin, count, out)) fail(path_ + ": /loss_mask", "read failed");
  for (size_t i = at; i < out.size(); ++i)
    if (out[i] > 1) {
      const int value = out[i];
      out.resize(at);
      fail(path_ + ": /loss_mask[" + std::to_string(begin + int64_t(i - at)) + "]",
           "expected 0 or 1, got " + std::to_string(value));
    }
}

std::vector<int32_t> TokenShard::read_document(int64_t doc) const {
  std::vector<int32_t> out;
  read_tokens(doc_offsets_.at(size_t(doc)), doc_length(doc), out);
  return out;
}

std::string tokenizer_identity_file(const std::string& path) {
  if (!is_directory(path)) return path;
  for (const char* name : kTokenizerVocabularyFiles) {
    std::string f = path + "/" + name;
    if (file_exists(f)) return f;
  }
  fail(path, "no tokenizer.json, tokenizer.model or vocab.txt in this folder");
}

}  // namespace gemkit
