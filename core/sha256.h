// SHA-256 (FIPS 180-4): content identity of files that must match across runs, e.g. the
// tokenizer a token shard was made with. Torch-free, dependency-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gemkit {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex_digest();  // finishes the hash; 64 lowercase hex digits

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view bytes);
// Streams the file (no size limit); throws gemkit::Error naming the path if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace gemkit
