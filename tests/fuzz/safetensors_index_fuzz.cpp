// libFuzzer target: a sharded checkpoint's model.safetensors.index.json (SafetensorsSet::open),
// checked against two fixed shards written once (a.safetensors: x, y; b.safetensors: z) with
// the project's own writer. Accepted indexes must list exactly the shards' tensors.
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
    fuzz::require(set.tensors().size() == 3, "an accepted index lists every shard tensor");
    for (const auto& [name, view] : set.tensors()) fuzz::require(view && view->name == name, "tensor names match");
  } catch (const Error&) {
  }
  return 0;
}
