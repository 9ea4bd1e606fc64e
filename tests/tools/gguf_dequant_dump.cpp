// Test tool: every tensor of a GGUF file dequantized by gemkit (formats/ggml_dequant.h) into a
// float32 safetensors file under the same names, in PyTorch order ([rows, columns]), with no
// other transformation. tests/reference/check_dequant.py compares it with the `gguf` package.
//   gguf_dequant_dump FILE.gguf OUT.safetensors
#include <cstdio>
#include <memory>
#include <vector>

#include "core/error.h"
#include "formats/ggml_dequant.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: gguf_dequant_dump FILE.gguf OUT.safetensors\n");
    return 2;
  }
  try {
    const gemkit::GgufFile f(argv[1]);
    gemkit::SafetensorsWriter writer;
    for (const gemkit::GgufTensorInfo& t : f.tensors()) {
      std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());
      const int64_t cols = shape.back(), rows = static_cast<int64_t>(t.n_elements) / cols;
      auto values = std::make_shared<std::vector<float>>(t.n_elements);
      const size_t row_bytes = static_cast<size_t>(cols / gemkit::ggml_block_elems(t.type)) * gemkit::ggml_block_bytes(t.type);
      for (int64_t r = 0; r < rows; ++r)
        gemkit::ggml_dequantize_row(t.type, f.tensor_data(t) + r * row_bytes, cols, values->data() + r * cols);
      writer.add(t.name, gemkit::DType::F32, shape, values->data(), values->size() * sizeof(float), values);
    }
    writer.write(argv[2]);
  } catch (const gemkit::Error& e) {
    std::fprintf(stderr, "gguf_dequant_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
