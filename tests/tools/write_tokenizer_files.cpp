// write_tokenizer_files FILE.gguf DIR: DIR's tokenizer files (tokenizer.json or tokenizer.model,
// tokenizer_config.json) from the GGUF file's tokenizer metadata alone (import/tokenizer_files.h):
// what `gemkit import gguf` writes, for vocabulary-only files that have no tensors to import.
#include <cstdio>

#include "core/error.h"
#include "formats/gguf.h"
#include "import/tokenizer_files.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: write_tokenizer_files FILE.gguf DIR\n");
    return 2;
  }
  try {
    gemkit::GgufFile gguf(argv[1]);
    gemkit::write_hf_tokenizer_files(gguf, argv[2]);
  } catch (const gemkit::Error& e) {
    std::fprintf(stderr, "write_tokenizer_files: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
