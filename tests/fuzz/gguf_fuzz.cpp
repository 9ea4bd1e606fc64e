// libFuzzer target: the LibTorch-side GGUF reader (formats/gguf.h GgufFile), which the importer
// and the tokenizer loader use. Every metadata value of an accepted file is read back with its
// own type's accessor (arrays element by element), and every tensor must lie inside the file.
#include "core/error.h"
#include "formats/gguf.h"
#include "tests/fuzz/fuzz_target.h"

namespace {
void walk(const gemkit::GgufValue& v, int depth) {
  using gemkit::GgufType;
  gemkit::fuzz::require(depth < 64, "array nesting is bounded");
  if (v.is_array()) {
    const GgufType t = v.array_type();
    for (size_t i = 0; i < v.size(); ++i) {
      if (t == GgufType::ARRAY) walk(v.array_at(i), depth + 1);
      else if (t == GgufType::STRING) (void)v.string_at(i).size();
      else if (t == GgufType::F32 || t == GgufType::F64) (void)v.double_at(i);
      else (void)v.int_at(i);
    }
  } else if (v.type() == GgufType::STRING) {
    (void)v.as_string().size();
  } else if (v.type() == GgufType::BOOL) {
    (void)v.as_bool();
  } else if (v.is_integer()) {
    (void)v.as_int();
  } else {
    (void)v.as_double();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "model.gguf");
  try {
    GgufFile file(path);
    for (const GgufKeyValue& kv : file.metadata()) {
      fuzz::require(file.find(kv.key) != nullptr, "find() sees every key");
      try {
        walk(kv.value, 0);
      } catch (const Error&) {
        // an integer accessor refusing a value out of int64 range is a named error too
      }
    }
    // (A file without tensors may end before its aligned data section would start.)
    if (!file.tensors().empty()) fuzz::require(file.data_offset() <= size, "the data section starts inside the file");
    for (const GgufTensorInfo& t : file.tensors()) {
      fuzz::require(ggml_type_info(t.type) != nullptr, "tensor types are known");
      fuzz::require(t.offset <= size - file.data_offset() && t.n_bytes <= size - file.data_offset() - t.offset,
                    "tensors lie inside the file");
      if (t.n_bytes) {
        const uint8_t* p = file.tensor_data(t);
        volatile uint8_t touch = p[0] ^ p[t.n_bytes - 1];
        (void)touch;
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
