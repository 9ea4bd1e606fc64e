#include "core/file_io.h"

#include <filesystem>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "core/error.h"

namespace gemkit {

static std::string errno_text() { return std::strerror(errno); }

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat: " + errno_text());
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail(path, "cannot mmap: " + errno_text());
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void write_all(std::FILE* f, const void* data, size_t size, const std::string& path) {
  if (size && std::fwrite(data, 1, size, f) != size)
    fail(path, "write failed: " + errno_text());
}

static std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Removes what an earlier writer of `path` that was killed left beside it: "<name>.tmp.<pid>"
// (a partial file or folder) and "<name>.old.<pid>" (a replaced folder not yet deleted) of
// processes no longer running; a running one may be writing right now. An ".old." folder is
// moved back instead when `path` itself is missing (the writer was killed between its renames).
static void remove_stale_temps(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string name = target.filename().string();
  std::error_code ec;
  std::vector<std::pair<fs::path, bool>> stale;  // (path, is an ".old." one)
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    for (const std::string kind : {".tmp.", ".old."}) {
      const std::string prefix = name + kind;
      if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string pid_text = n.substr(prefix.size());
      if (pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
      if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno == EPERM) continue;  // ours, or alive
      stale.emplace_back(e.path(), kind == ".old.");
    }
  }
  for (const auto& [p, old] : stale) {
    if (old && !fs::exists(target)) fs::rename(p, target, ec);
    else fs::remove_all(p, ec);
  }
}

void write_file_atomic(const std::string& path,
                       const std::function<void(std::FILE*)>& write) {
  remove_stale_temps(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(tmp, "cannot create: " + errno_text());
  try {
    write(f);
    if (std::fflush(f) != 0) fail(tmp, "flush failed: " + errno_text());
    if (::fsync(::fileno(f)) != 0) fail(tmp, "fsync failed: " + errno_text());
  } catch (...) {
    std::fclose(f);
    ::unlink(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    ::unlink(tmp.c_str());
    fail(tmp, "close failed: " + errno_text());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail(path, "cannot rename temporary file into place: " + errno_text());
  }
  // Make the rename itself durable.
  int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_text_file_atomic(const std::string& path, std::string_view text) {
  write_file_atomic(path, [&](std::FILE* f) { write_all(f, text.data(), text.size(), path); });
}

namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open to sync: " + errno_text());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(path, "fsync failed: " + errno_text());
}

}  // namespace

void write_directory_atomic(const std::string& dir, bool replace,
                            const std::function<void(const std::string& tmp_dir)>& fill) {
  namespace fs = std::filesystem;
  std::string target = dir;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  remove_stale_temps(target);
  if (fs::exists(target) && !replace) fail(target, "exists; pass --force to replace it");
  if (fs::exists(target) && !fs::is_directory(target)) fail(target, "exists and is not a folder");
  const std::string tmp = target + ".tmp." + std::to_string(::getpid());
  const std::string old = target + ".old." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp);
    fill(tmp);
    for (const auto& e : fs::recursive_directory_iterator(tmp)) {
      if (e.is_regular_file()) fsync_path(e.path().string(), O_RDONLY);
      else if (e.is_directory()) fsync_path(e.path().string(), O_RDONLY | O_DIRECTORY);
    }
    fsync_path(tmp, O_RDONLY | O_DIRECTORY);
    // rename() cannot replace a non-empty folder: the old one is moved aside first, so the
    // new one still appears in a single rename.
    if (fs::exists(target)) fs::rename(target, old);
    fs::rename(tmp, target);
  } catch (...) {
    fs::remove_all(tmp, ec);
    if (!fs::exists(target) && fs::exists(old)) fs::rename(old, target, ec);
    throw;
  }
  fs::remove_all(old, ec);
  fsync_path(parent_dir(target), O_RDONLY | O_DIRECTORY);
}

}  // namespace gemkit
