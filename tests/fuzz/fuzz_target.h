// Shared by the libFuzzer targets in this folder. Most parsers take a path, so the input is
// written to a file in a per-process scratch folder; the folder is removed at exit. A target
// catches gemkit::Error (the named error malformed input must get) and nothing else: a crash,
// a sanitizer report, another exception type or a broken invariant (require) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <filesystem>
#include <string>

namespace gemkit::fuzz {

struct ScratchDir {
  // In memory where the machine has it: targets that write folders (gguf_import) fsync them,
  // which on a disk costs more than the parsing being fuzzed.
  std::string path = std::string(std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") +
                     "/gemkit_fuzz_" + std::to_string(::getpid());
  ScratchDir() { std::filesystem::create_directories(path); }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

inline const std::string& scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

// Writes the input as scratch_dir()/name (the name matters where a parser looks at siblings
// or reads meaning from the path).
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = scratch_dir() + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// An invariant the parser promises once it accepted the input.
inline void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz finding: broken invariant: %s\n", what);
  std::abort();
}

// Text every tokenizer target encodes once a vocabulary loads: ASCII, accents, CJK, emoji,
// digits, whitespace runs and special-token look-alikes.
inline constexpr const char* kProbeText =
    "Hello  world! caf\xc3\xa9 na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 12345\n\t<s></s><|im_end|> [CLS]";

}  // namespace gemkit::fuzz
