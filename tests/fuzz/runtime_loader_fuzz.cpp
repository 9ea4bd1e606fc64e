// libFuzzer target: gemkit-run's loader (runtime::Model, which validates the GGUF container,
// the architecture keys, tensor names, types, shapes and offsets, and the tokenizer metadata)
// on arbitrary bytes, then one evaluated token when a file loads.
#include "core/error.h"
#include "runtime/model.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "model.gguf");
  try {
    runtime::Model model(path);
    runtime::Session session(model, 4, 1);
    session.eval({0, int32_t(model.config().vocab - 1)});
  } catch (const Error&) {
  }
  return 0;
}
