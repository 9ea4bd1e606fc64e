#include "runtime/thread_pool.h"

#include <chrono>

namespace gemkit::runtime {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  const int parts = threads();
  if (parts == 1 || n < parts) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &fn;
    n_ = n;
    pending_.store(parts - 1);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  fn(0, n / parts);
  while (pending_.load(std::memory_order_acquire) > 0) {
  }
}

void ThreadPool::work(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little (the next product usually comes within microseconds), then sleep.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) {
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    const int parts = threads();
    const int64_t begin = n_ * index / parts, end = n_ * (index + 1) / parts;
    (*task_)(begin, end);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace gemkit::runtime
