// File helpers shared by every format: read-only memory maps and atomic writes.
// Torch-free on purpose: the edge runtime and the tokenizers use them too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace gemkit {

// A read-only memory map of a whole file. Movable, not copyable.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_text_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

// Writes a file so that readers only ever see the old or the complete new content:
// write to "<path>.tmp.<pid>", fsync, rename over path, fsync the directory. Temporaries that a
// killed earlier writer of `path` left beside it are removed first.
// `write` receives the open file descriptor's stream writer.
void write_file_atomic(const std::string& path,
                       const std::function<void(std::FILE*)>& write);
void write_text_file_atomic(const std::string& path, std::string_view text);

// Writes a whole folder so that `dir` only ever holds the old or the complete new content:
// `fill` writes into "<dir>.tmp.<pid>", every file is fsynced, and the folder is renamed into
// place. An existing `dir` is an error unless `replace` (it is then moved aside, the new one
// renamed in, the old one removed). If `fill` throws, the temporary folder is removed and
// `dir` is untouched. Temporaries of a killed earlier writer are removed first (and its old
// folder moved back when it was killed between the two renames).
void write_directory_atomic(const std::string& dir, bool replace,
                            const std::function<void(const std::string& tmp_dir)>& fill);

// Throws gemkit::Error naming `path` if fwrite/fflush fail (disk full, ...).
void write_all(std::FILE* f, const void* data, size_t size, const std::string& path);

}  // namespace gemkit
