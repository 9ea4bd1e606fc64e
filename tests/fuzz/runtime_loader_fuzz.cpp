// libFuzzer target: gemkit-run's loader (runtime::Model, which validates the GGUF container,
// the architecture keys, tensor names, types, shapes and offsets, and the tokenizer metadata)
// on arbitrary bytes, then one evaluated token when a file loads. Anything but a clean
// gemkit::Error is a finding (crash, sanitizer report, other exception type).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "runtime/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/gemkit_fuzz_" + std::to_string(::getpid()) + ".gguf";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    gemkit::runtime::Model model(path);
    gemkit::runtime::Session session(model, 4, 1);
    session.eval({0, int32_t(model.config().vocab - 1)});
  } catch (const gemkit::Error&) {
    // expected for malformed input: a named error
  }
  return 0;
}
