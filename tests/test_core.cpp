#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/file_io.h"

using namespace gemkit;

static std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "gemkit_core_" + std::to_string(::getpid()) + "_" + name;
}

TEST(FileIo, AtomicWriteReplacesContentAndLeavesNoTemporary) {
  const std::string path = temp_path("atomic.txt");
  write_text_file_atomic(path, "first");
  write_text_file_atomic(path, "second version");
  EXPECT_EQ(read_text_file(path), "second version");
  EXPECT_FALSE(file_exists(path + ".tmp." + std::to_string(::getpid())));
  std::remove(path.c_str());
}

TEST(FileIo, FailedWriteKeepsPreviousFile) {
  const std::string path = temp_path("keep.txt");
  write_text_file_atomic(path, "good");
  EXPECT_THROW(write_file_atomic(path, [&](std::FILE*) { fail(path, "simulated failure"); }),
               Error);
  EXPECT_EQ(read_text_file(path), "good");
  EXPECT_FALSE(file_exists(path + ".tmp." + std::to_string(::getpid())));
  std::remove(path.c_str());
}

TEST(FileIo, MappedFileSeesBytes) {
  const std::string path = temp_path("map.bin");
  write_text_file_atomic(path, "abc");
  MappedFile m(path);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.data()[1], 'b');
  std::remove(path.c_str());
}

TEST(FileIo, MissingFileErrorNamesPath) {
  try {
    MappedFile m("/nonexistent/gemkit.bin");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/gemkit.bin"), std::string::npos);
  }
}
