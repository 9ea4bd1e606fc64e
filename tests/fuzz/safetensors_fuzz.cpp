// libFuzzer target: one .safetensors file (formats/safetensors.h SafetensorsFile), whose
// constructor validates the JSON header against the file. Accepted files must keep every
// tensor inside the file's data section, with nbytes = numel * dtype size.
#include "core/error.h"
#include "formats/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

#include <algorithm>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "model.safetensors");
  try {
    SafetensorsFile file(path);
    uint64_t header = 0;
    fuzz::require(size >= 8, "an accepted file holds the 8-byte header length");
    std::memcpy(&header, data, 8);
    const uint8_t *lowest = nullptr, *highest = nullptr;
    size_t total = 0;
    for (const TensorView& t : file.tensors()) {
      fuzz::require(t.numel() >= 0, "numel is not negative");
      fuzz::require(t.nbytes == size_t(t.numel()) * dtype_size(t.dtype), "nbytes = numel * dtype size");
      fuzz::require(file.find(t.name) == &t, "find() returns the listed tensor");
      if (t.nbytes == 0) continue;
      if (!lowest || t.data < lowest) lowest = t.data;
      if (!highest || t.data + t.nbytes > highest) highest = t.data + t.nbytes;
      total += t.nbytes;
      volatile uint8_t touch = t.data[0] ^ t.data[t.nbytes - 1];
      (void)touch;
    }
    if (lowest) fuzz::require(size_t(highest - lowest) <= size - 8 - header, "tensors lie inside the data section");
    fuzz::require(total <= size - 8 - header, "tensors do not overlap");
  } catch (const Error&) {
  }
  return 0;
}
