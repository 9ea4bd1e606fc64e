#include "train/checkpointing.h"

#include <ATen/Context.h>
#include <fcntl.h>
#include <signal.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace gemkit {
namespace fs = std::filesystem;

namespace {

constexpr const char* kTempPrefix = ".tmp-step-";

// fsync of a directory makes the renames and creations inside it durable.
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail(dir, "cannot open the folder to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(dir, "fsync failed");
}

// Files written by someone else's code (save_pretrained) are fsynced by it already; syncing
// every file once more is cheap and does not rely on that.
void fsync_tree(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) fail(e.path().string(), "cannot open to sync");
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) fail(e.path().string(), "fsync failed");
  }
  fsync_dir(dir);
}

std::optional<int64_t> parse_checkpoint_name(const std::string& name) {
  if (name.size() != 12 || name.compare(0, 5, "step-") != 0) return std::nullopt;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
  return std::stoll(name.substr(5));
}

bool is_complete(const std::string& run_dir, int64_t step) {
  return file_exists((fs::path(run_dir) / checkpoint_name(step) / kTrainerStateFile).string());
}

std::string to_hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  return s;
}

torch::Tensor from_hex(const std::string& hex, const std::string& where) {
  if (hex.size() % 2) fail(where, "RNG state: odd number of hex digits");
  torch::Tensor t = torch::empty({int64_t(hex.size() / 2)}, torch::kUInt8);
  uint8_t* p = t.data_ptr<uint8_t>();
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    fail(where, "RNG state: not a hex digit");
  };
  for (size_t i = 0; i < hex.size() / 2; ++i) p[i] = uint8_t(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return t;
}

std::string generator_hex(const at::Generator& gen) {
  torch::Tensor s = gen.get_state().contiguous();
  return to_hex(s.data_ptr<uint8_t>(), size_t(s.numel()));
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%07lld", (long long)step);
  return buf;
}

std::string write_checkpoint(const std::string& run_dir, int64_t step,
                             const std::function<void(const std::string&)>& fill) {
  const fs::path final_path = fs::path(run_dir) / checkpoint_name(step);
  const fs::path tmp = fs::path(run_dir) / (kTempPrefix + checkpoint_name(step).substr(5) + "." +
                                            std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    fill(tmp.string());
    fsync_tree(tmp.string());
  } catch (...) {
    // A failed write (disk full, I/O error) must not leave its partial folder on a disk that
    // may already be full; the earlier checkpoints are untouched.
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  // rename() cannot replace a non-empty folder; an older checkpoint of the same step (a rerun
  // after resume from an earlier one) is moved aside first, so the new one still appears in a
  // single rename.
  if (fs::exists(final_path)) {
    const fs::path old = fs::path(run_dir) / (kTempPrefix + checkpoint_name(step).substr(5) + ".old");
    fs::remove_all(old);
    fs::rename(final_path, old);
    fs::rename(tmp, final_path);
    fsync_dir(run_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_path);
  }
  fsync_dir(run_dir);
  return final_path.string();
}

std::vector<int64_t> list_checkpoints(const std::string& run_dir) {
  std::vector<int64_t> steps;
  if (!is_directory(run_dir)) return steps;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    if (!e.is_directory()) continue;
    auto step = parse_checkpoint_name(e.path().filename().string());
    if (step && is_complete(run_dir, *step)) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::optional<int64_t> read_checkpoint_pointer(const std::string& run_dir, const std::string& pointer) {
  const std::string path = (fs::path(run_dir) / pointer).string();
  if (!file_exists(path)) return std::nullopt;
  std::string text = read_text_file(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return parse_checkpoint_name(text);
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  // The pointer is written after the folder is renamed, so a kill in between leaves it one
  // checkpoint behind; the newest complete folder is the truth, the pointer a convenience.
  const std::vector<int64_t> steps = list_checkpoints(run_dir);
  if (steps.empty()) return std::nullopt;
  int64_t step = steps.back();
  auto pointed = read_checkpoint_pointer(run_dir, "latest");
  if (pointed && *pointed > step && is_complete(run_dir, *pointed)) step = *pointed;
  return (fs::path(run_dir) / checkpoint_name(step)).string();
}

void set_checkpoint_pointer(const std::string& run_dir, const std::string& pointer, int64_t step) {
  write_text_file_atomic((fs::path(run_dir) / pointer).string(), checkpoint_name(step) + "\n");
}

void prune_checkpoints(const std::string& run_dir, int64_t keep_last, const std::set<int64_t>& keep) {
  if (keep_last <= 0) return;
  const std::vector<int64_t> steps = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep_last) < steps.size(); ++i)
    if (!keep.count(steps[i])) fs::remove_all(fs::path(run_dir) / checkpoint_name(steps[i]));
}

void remove_stale_checkpoint_temps(const std::string& run_dir) {
  if (!is_directory(run_dir)) return;
  for (const auto& e : fs::directory_iterator(run_dir))
    if (e.path().filename().string().rfind(kTempPrefix, 0) == 0) fs::remove_all(e.path());
}

void maybe_kill_for_test(int64_t step) {
  const char* v = std::getenv("GEMKIT_TEST_KILL_DURING_CHECKPOINT");
  if (v && *v && std::to_string(step) == v) ::kill(::getpid(), SIGKILL);
}

std::string torch_rng_state_hex() { return generator_hex(at::detail::getDefaultCPUGenerator()); }

void restore_torch_rng_state_hex(const std::string& hex, const std::string& where) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(from_hex(hex, where));
}

std::string cuda_rng_state_hex() {
  if (!torch::cuda::is_available()) return "";
  return generator_hex(at::globalContext().defaultGenerator(c10::DeviceType::CUDA));
}

void restore_cuda_rng_state_hex(const std::string& hex, const std::string& where) {
  if (hex.empty()) return;
  // Resuming a CUDA run on the CPU cannot be bit-exact anyway; the CPU state still is restored.
  if (!torch::cuda::is_available()) return;
  at::Generator gen = at::globalContext().defaultGenerator(c10::DeviceType::CUDA);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(from_hex(hex, where));
}

std::string mt19937_state_text(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

void restore_mt19937_state_text(std::mt19937_64& rng, const std::string& text, const std::string& where) {
  std::istringstream s(text);
  s >> rng;
  if (s.fail()) fail(where, "trainer RNG state is not a valid mt19937_64 state");
}

}  // namespace gemkit
