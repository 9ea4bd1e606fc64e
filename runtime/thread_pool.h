// A small pool for the runtime's matrix-vector products: parallel_for splits [0, n) into one
// contiguous range per thread. Workers spin briefly on an atomic generation counter between
// tasks (a token's dozens of products are microseconds apart), then sleep.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gemkit::runtime {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1 (the caller is one of them)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return int(workers_.size()) + 1; }
  // fn(begin, end) on disjoint ranges covering [0, n); returns when all are done.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void work(int index);
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int64_t, int64_t)>* task_ = nullptr;
  int64_t n_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace gemkit::runtime
