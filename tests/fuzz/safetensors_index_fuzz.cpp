// libFuzzer target: a sharded checkpoint's model.safetensors.index.json (SafetensorsSet::open),
// checked against two fixed shards written once (a.safetensors: x, y; b.safetensors: z) with
// the project's own writer. An accepted index lists exactly the tensors of the shards it names
// (a shard it does not name is not part of the checkpoint, as in transformers).
#include "core/error.h"
#include "formats/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

#include <filesystem>
#include <memory>

namespace {
void write_shards() {
  using namespace gemkit;
  static const float values[4] = {1, 2, 3, 4};
  SafetensorsWriter a, b;
  a.add("x", DType::F32, {2}, values, 8);
  a.add("y", DType::F32, {1, 2}, values + 2, 8);
  b.add("z", DType::F32, {4}, values, 16);
  a.write(fuzz::scratch_dir() + "/a.safetensors");
  b.write(fuzz::scratch_dir() + "/b.safetensors");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  static const bool shards_written = (write_shards(), true);
  (void)shards_written;
  const std::string path = fuzz::write_input(data, size, "model.safetensors.index.json");
  try {
    SafetensorsSet set = SafetensorsSet::open(path);
    size_t in_shards = 0;
    for (const std::string& file : set.files())
      in_shards += std::filesystem::path(file).filename() == "a.safetensors" ? 2 : 1;
    fuzz::require(set.tensors().size() == in_shards, "an accepted index lists every tensor of its shards");
    for (const auto& [name, view] : set.tensors()) fuzz::require(view && view->name == name, "tensor names match");
  } catch (const Error&) {
  }
  return 0;
}
