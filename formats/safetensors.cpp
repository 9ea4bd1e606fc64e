#include "formats/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace gemkit {

using json = nlohmann::json;

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
  bool floating;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8, true},  {DType::F32, "F32", 4, true},   {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true}, {DType::I64, "I64", 8, false}, {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false}, {DType::I8, "I8", 1, false},    {DType::U8, "U8", 1, false},
    {DType::BOOL, "BOOL", 1, false},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& i : kDTypes)
    if (i.dtype == dtype) return i;
  throw Error("invalid gemkit::DType value " + std::to_string(static_cast<int>(dtype)));
}

// The reference implementation refuses headers above 100 MB; a bigger length is a corrupt
// file, and refusing it early avoids parsing garbage.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::string join_path(const std::string& folder, const std::string& name) {
  if (folder.empty() || folder.back() == '/') return folder + name;
  return folder + "/" + name;
}

std::string parent_folder(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Parses JSON and reports the top-level keys that appear more than once: nlohmann::json
// silently keeps the last one, but a safetensors header with two entries of one name is
// corrupt (two different byte ranges claim the tensor).
json parse_json_rejecting_duplicate_keys(const std::string& text, const std::string& where,
                                         const std::string& what) {
  std::set<std::string> seen;
  std::string duplicate;
  json parsed;
  try {
    parsed = json::parse(text, [&](int depth, json::parse_event_t event, json& value) {
      if (depth == 1 && event == json::parse_event_t::key) {
        const std::string key = value.get<std::string>();
        if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
      }
      return true;
    });
  } catch (const json::exception& e) {
    fail(where, "invalid JSON in the " + what + ": " + e.what());
  }
  if (!duplicate.empty()) fail(where, "tensor " + duplicate + ": listed twice in the " + what);
  if (!parsed.is_object())
    fail(where, "expected the " + what + " to be a JSON object, got " + parsed.type_name());
  return parsed;
}

uint64_t nonnegative_integer(const json& value, const std::string& where, const std::string& field) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return value.get<uint64_t>();
  fail(where, "expected " + field + " to be a non-negative integer, got " + value.dump());
}

}  // namespace

const char* dtype_name(DType dtype) { return info(dtype).name; }
size_t dtype_size(DType dtype) { return info(dtype).size; }
bool dtype_is_floating(DType dtype) { return info(dtype).floating; }

DType parse_dtype(const std::string& name, const std::string& where) {
  for (const auto& i : kDTypes)
    if (name == i.name) return i.dtype;
  fail(where, "expected dtype F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL, got \"" + name + "\"");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------
// Reader

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(path) {
  const size_t file_size = map_.size();
  if (file_size < 8)
    fail(path, "expected at least 8 bytes (the header length), got " + std::to_string(file_size) +
                   " (not a safetensors file)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, map_.data(), 8);
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the file size " +
                   std::to_string(file_size) + " (truncated or not a safetensors file)");
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the 100 MB limit");

  const std::string text(reinterpret_cast<const char*>(map_.data()) + 8, header_len);
  const json header = parse_json_rejecting_duplicate_keys(text, path, "header");

  const uint8_t* buffer = map_.data() + 8 + header_len;
  const uint64_t buffer_size = file_size - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // parallel to tensors_

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail(path, "expected __metadata__ to be an object of strings, got " + std::string(entry.type_name()));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail(path, "__metadata__ key " + key + ": expected a string, got " + value.dump());
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor " + name;
    if (!entry.is_object())
      fail(where, "expected an object with dtype, shape and data_offsets, got " + std::string(entry.type_name()));
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(key)) fail(where, std::string("expected key \"") + key + "\", not found");

    TensorView view;
    view.name = name;
    view.file = path;
    if (!entry["dtype"].is_string()) fail(where, "expected dtype to be a string, got " + entry["dtype"].dump());
    view.dtype = parse_dtype(entry["dtype"].get<std::string>(), where);

    const json& shape = entry["shape"];
    if (!shape.is_array()) fail(where, "expected shape to be an array, got " + shape.dump());
    // Element count in 128 bits: a hostile shape must not wrap around and pass the size check.
    unsigned __int128 expected_bytes = dtype_size(view.dtype);
    for (const json& d : shape) {
      const uint64_t dim = nonnegative_integer(d, where, "shape dimensions");
      if (dim > uint64_t(INT64_MAX)) fail(where, "shape dimension " + d.dump() + " is too large");
      view.shape.push_back(static_cast<int64_t>(dim));
      expected_bytes *= dim;
      if (expected_bytes > UINT64_MAX) fail(where, "shape " + shape.dump() + " is too large");
    }

    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
      fail(where, "expected data_offsets to be [begin, end], got " + offsets.dump());
    const uint64_t begin = nonnegative_integer(offsets[0], where, "data_offsets");
    const uint64_t end = nonnegative_integer(offsets[1], where, "data_offsets");
    if (end < begin) fail(where, "expected data_offsets begin <= end, got " + offsets.dump());
    if (expected_bytes != end - begin)
      fail(where, "expected " + std::to_string(static_cast<uint64_t>(expected_bytes)) + " bytes (shape " +
                      shape_text(view.shape) + " x " + std::to_string(dtype_size(view.dtype)) + " bytes of " +
                      dtype_name(view.dtype) + "), got data_offsets " + offsets.dump() + " = " +
                      std::to_string(end - begin) + " bytes");
    if (end > buffer_size)
      fail(where, "data_offsets " + offsets.dump() + " run past the end of the data (" +
                      std::to_string(buffer_size) + " bytes; truncated file?)");
    view.data = buffer + begin;
    view.nbytes = end - begin;
    tensors_.push_back(std::move(view));
    ranges.emplace_back(begin, end);
  }

  // The data buffer must be tiled exactly: sorted by offset, each tensor starts where the
  // previous one ends, and the last one ends at the end of the file.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  uint64_t cursor = 0;
  const TensorView* previous = nullptr;
  for (size_t i : order) {
    const auto [begin, end] = ranges[i];
    const std::string where = path + ": tensor " + tensors_[i].name;
    if (begin < cursor)
      fail(where, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] overlap tensor " +
                      previous->name + " (which ends at " + std::to_string(cursor) + ")");
    if (begin > cursor)
      fail(where, "expected data to start at offset " + std::to_string(cursor) + ", got " + std::to_string(begin) +
                      " (a hole of " + std::to_string(begin - cursor) + " unused bytes)");
    cursor = end;
    previous = &tensors_[i];
  }
  if (cursor != buffer_size)
    fail(path, "expected a data buffer of " + std::to_string(cursor) + " bytes (the end of the last tensor), got " +
                   std::to_string(buffer_size) + " (" + std::to_string(buffer_size - cursor) + " unused trailing bytes)");

  std::vector<TensorView> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back(std::move(tensors_[i]));
  tensors_ = std::move(sorted);
  for (size_t i = 0; i < tensors_.size(); ++i) by_name_[tensors_[i].name] = i;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& SafetensorsFile::at(const std::string& name) const {
  const TensorView* view = find(name);
  if (!view) fail(path(), "tensor " + name + ": expected in this file, not found");
  return *view;
}

// ---------------------------------------------------------------------------------------
// Sharded checkpoints

SafetensorsSet SafetensorsSet::open(const std::string& path) {
  std::string file = path;
  if (is_directory(path)) {
    const std::string single = join_path(path, kSafetensorsSingleName);
    const std::string index = join_path(path, kSafetensorsIndexName);
    if (file_exists(single))
      file = single;
    else if (file_exists(index))
      file = index;
    else if (file_exists(join_path(path, "pytorch_model.bin")) || file_exists(join_path(path, "pytorch_model.bin.index.json")))
      // Pickled checkpoints are never read: unpickling can run code that the file carries.
      fail(path, std::string("expected ") + kSafetensorsSingleName + " or " + kSafetensorsIndexName +
                     ", found only pytorch_model.bin, a pickle, which gemkit never loads (unpickling can run code "
                     "from the file); convert it with transformers: model.save_pretrained(DIR, safe_serialization=True)");
    else
      fail(path, std::string("expected ") + kSafetensorsSingleName + " or " + kSafetensorsIndexName +
                     " in this folder, found neither");
  }

  SafetensorsSet set;
  set.source_ = file;
  if (!ends_with(file, ".index.json")) {
    set.files_.push_back(std::make_unique<SafetensorsFile>(file));
    for (const TensorView& view : set.files_.back()->tensors()) set.by_name_[view.name] = &view;
    return set;
  }

  const json index = parse_json_rejecting_duplicate_keys(read_text_file(file), file, "index");
  if (!index.contains("weight_map") || !index["weight_map"].is_object())
    fail(file, "expected key \"weight_map\" with an object {tensor: shard file}, not found");
  if (index.contains("metadata") && !index["metadata"].is_object())
    fail(file, "expected \"metadata\" to be an object, got " + index["metadata"].dump());

  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  std::map<std::string, std::string> first_tensor_of_shard;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail(file, "tensor " + tensor + ": expected a shard file name, got " + shard.dump());
    const std::string name = shard.get<std::string>();
    if (name.empty() || name.front() == '/' || name.find("..") != std::string::npos)
      fail(file, "tensor " + tensor + ": expected a shard file name in the index's folder, got \"" + name + "\"");
    weight_map[tensor] = name;
    first_tensor_of_shard.emplace(name, tensor);
  }
  if (weight_map.empty()) fail(file, "expected weight_map to list tensors, got an empty map");

  const std::string folder = parent_folder(file);
  for (const auto& [shard, tensor] : first_tensor_of_shard) {
    const std::string shard_path = join_path(folder, shard);
    if (!file_exists(shard_path))
      fail(file, "shard " + shard + " (listed for tensor " + tensor + "): expected at " + shard_path + ", not found");
    set.files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
    const SafetensorsFile& opened = *set.files_.back();
    for (const TensorView& view : opened.tensors()) {
      auto it = weight_map.find(view.name);
      if (it == weight_map.end())
        fail(shard_path, "tensor " + view.name + ": present in the shard but not listed in " + file);
      if (it->second != shard)
        fail(shard_path, "tensor " + view.name + ": present in this shard, but " + file + " places it in " +
                             it->second);
      set.by_name_[view.name] = &view;
    }
  }
  for (const auto& [tensor, shard] : weight_map)
    if (!set.by_name_.count(tensor))
      fail(join_path(folder, shard), "tensor " + tensor + ": listed in " + file + " but absent from this shard");
  return set;
}

const TensorView* SafetensorsSet::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> SafetensorsSet::files() const {
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path());
  return paths;
}

const std::map<std::string, std::string>& SafetensorsSet::metadata() const {
  static const std::map<std::string, std::string> empty;
  return files_.empty() ? empty : files_.front()->metadata();
}

// ---------------------------------------------------------------------------------------
// Writer

void SafetensorsWriter::add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            const void* data, size_t nbytes, std::shared_ptr<const void> owner) {
  if (name.empty() || name == "__metadata__") fail("safetensors writer", "invalid tensor name \"" + name + "\"");
  if (by_name_.count(name)) fail("safetensors writer", "tensor " + name + ": added twice");
  uint64_t expected = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) fail("safetensors writer", "tensor " + name + ": negative dimension in shape " + shape_text(shape));
    expected *= static_cast<uint64_t>(d);
  }
  if (expected != nbytes)
    fail("safetensors writer", "tensor " + name + ": expected " + std::to_string(expected) + " bytes for shape " +
                                   shape_text(shape) + " of " + dtype_name(dtype) + ", got " + std::to_string(nbytes));
  if (nbytes > 0 && data == nullptr) fail("safetensors writer", "tensor " + name + ": null data");
  by_name_[name] = entries_.size();
  entries_.push_back({name, dtype, shape, data, nbytes, std::move(owner)});
}

uint64_t SafetensorsWriter::total_bytes() const {
  uint64_t total = 0;
  for (const Entry& e : entries_) total += e.nbytes;
  return total;
}

void SafetensorsWriter::write_entries(const std::string& path, std::vector<const Entry*> entries) const {
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) { return a->name < b->name; });
  // Built by hand rather than through json::dump so the layout matches the reference
  // writer: __metadata__ first, then the tensors in data order, keys dtype/shape/data_offsets.
  std::string header = "{";
  if (!metadata_.empty()) header += "\"__metadata__\":" + json(metadata_).dump();
  uint64_t offset = 0;
  for (const Entry* e : entries) {
    if (header.size() > 1) header += ",";
    header += json(e->name).dump() + ":{\"dtype\":\"" + dtype_name(e->dtype) + "\",\"shape\":" + json(e->shape).dump() +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + e->nbytes) + "]}";
    offset += e->nbytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  write_file_atomic(path, [&](std::FILE* f) {
    const uint64_t header_len = header.size();
    write_all(f, &header_len, 8, path);
    write_all(f, header.data(), header.size(), path);
    for (const Entry* e : entries) write_all(f, e->data, e->nbytes, path);
  });
}

void SafetensorsWriter::write(const std::string& path) const {
  std::vector<const Entry*> all;
  for (const Entry& e : entries_) all.push_back(&e);
  write_entries(path, std::move(all));
}

std::vector<std::string> SafetensorsWriter::write_sharded(const std::string& folder, uint64_t max_shard_bytes,
                                                          const std::string& stem) const {
  if (max_shard_bytes == 0) fail(folder, "expected a positive maximum shard size, got 0");
  std::vector<std::vector<const Entry*>> shards(1);
  uint64_t shard_bytes = 0;
  for (const Entry& e : entries_) {
    if (!shards.back().empty() && shard_bytes + e.nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&e);
    shard_bytes += e.nbytes;
  }

  if (shards.size() == 1) {
    const std::string name = stem + ".safetensors";
    write_entries(join_path(folder, name), shards.front());
    return {name};
  }

  std::vector<std::string> written;
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    const std::string file = stem + name;
    write_entries(join_path(folder, file), shards[i]);
    for (const Entry* e : shards[i]) weight_map[e->name] = file;
    written.push_back(file);
  }
  // Same shape and formatting as transformers: indent 2, sorted keys, trailing newline.
  const json index = {{"metadata", {{"total_size", total_bytes()}}}, {"weight_map", weight_map}};
  const std::string index_name = stem + ".safetensors.index.json";
  write_text_file_atomic(join_path(folder, index_name), index.dump(2) + "\n");
  written.push_back(index_name);
  return written;
}

}  // namespace gemkit
