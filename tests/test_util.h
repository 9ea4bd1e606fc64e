// Helpers shared by the test programs: temporary folders removed after the run, the tiny
// decoder configuration the model tests start from, and the messages of expected errors. Each test program is one translation unit,
// so the inline registration below runs once per program.
#pragma once
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/model_config.h"

namespace gemkit::test {

inline std::vector<std::string>& created_folders() {
  static std::vector<std::string> folders;
  return folders;
}

// Removes every folder temp_folder() created, once all tests have run.
struct RemoveTempFolders : ::testing::Environment {
  void TearDown() override {
    for (const auto& dir : created_folders()) std::filesystem::remove_all(dir);
  }
};
inline const auto* const kRemoveTempFolders = ::testing::AddGlobalTestEnvironment(new RemoveTempFolders);

// A fresh, empty folder: <gtest temp dir>/gemkit_<prefix>_<pid>_<name>.
inline std::string temp_folder(const std::string& prefix, const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "gemkit_" + prefix + "_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  created_folders().push_back(dir);
  return dir;
}

// Llama layout, `layers` blocks (default 2) of width 32, 4 query heads over 2 key/value heads,
// vocabulary 50.
inline ModelConfig tiny_decoder_config(int64_t layers = 2) {
  ModelConfig c;
  c.family = Family::Decoder;
  c.head = Head::CausalLM;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.hidden_act = "silu";
  return c;
}

// The message of the gemkit::Error that `f` throws, or "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs `f`, expecting a gemkit::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nmissing: " << part;
    return;
  }
  ADD_FAILURE() << "expected a gemkit::Error";
}

// A TCP port on 127.0.0.1 that was free a moment ago (0 if none could be bound).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return 0;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace gemkit::test
