// read_bandwidth: the machine's sustained memory READ bandwidth, the roofline of single-token
// decoding (every decoded token reads every weight matrix once; see bench/runtime_bench.sh).
//
//   build/bench/read_bandwidth [--mib 1024] [--reps 10] [--max-threads 2]
//
// A buffer much larger than the last-level cache (default 1 GiB; the L3 here is 32 MiB) is
// written once (so every page is mapped and backed before timing), then read start to end, with
// 1, 2, ... --max-threads std::threads, each reading one contiguous share. Every 64-bit lane of
// every loaded vector is summed into a checksum that is printed, so the loads cannot be dropped.
// Loads are AVX-512 (64 B), AVX2 (32 B) or SSE2 (16 B), the widest the CPU has (chosen at run
// time, so the binary runs on any x86-64; other CPUs: a plain loop the compiler vectorises).
// Per thread count: best (fastest) of --reps passes, also the median; a pass is timed from the
// release of the threads (created and waiting before) to the end of the slowest one.
// GB/s = bytes read / seconds / 1e9. Output: one JSON line,
//   {"threads_1_gb_s": ..., "threads_2_gb_s": ..., "threads_1_gb_s_median": ..., ...}
// threads_N_gb_s_cpu_time divides by the slowest thread's CPU time instead of the wall time of
// the best pass: when it is well above threads_N_gb_s, the threads were preempted (other work on
// the cores) and the wall-time figure understates the machine.
// Torch-free, C++17 and pthreads only.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GEMKIT_X86 1
#endif

namespace {

using Clock = std::chrono::steady_clock;

// Sum of the buffer's 64-bit words in [p, p + bytes); bytes a multiple of 256, p 64-byte aligned.
using ReadFn = uint64_t (*)(const uint8_t* p, size_t bytes);

#ifdef GEMKIT_X86
__attribute__((target("avx512f"))) uint64_t read_avx512(const uint8_t* p, size_t bytes) {
  __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
  for (const uint8_t* end = p + bytes; p < end; p += 256) {
    s0 = _mm512_add_epi64(s0, _mm512_load_si512(reinterpret_cast<const void*>(p)));
    s1 = _mm512_add_epi64(s1, _mm512_load_si512(reinterpret_cast<const void*>(p + 64)));
    s2 = _mm512_add_epi64(s2, _mm512_load_si512(reinterpret_cast<const void*>(p + 128)));
    s3 = _mm512_add_epi64(s3, _mm512_load_si512(reinterpret_cast<const void*>(p + 192)));
  }
  alignas(64) uint64_t lane[8];
  _mm512_store_si512(reinterpret_cast<void*>(lane), _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
  return lane[0] + lane[1] + lane[2] + lane[3] + lane[4] + lane[5] + lane[6] + lane[7];
}

__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t bytes) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (const uint8_t* end = p + bytes; p < end; p += 128) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 64)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  alignas(32) uint64_t lane[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane), s);
  return lane[0] + lane[1] + lane[2] + lane[3];
}

uint64_t read_sse2(const uint8_t* p, size_t bytes) {
  __m128i s0 = _mm_setzero_si128(), s1 = s0, s2 = s0, s3 = s0;
  for (const uint8_t* end = p + bytes; p < end; p += 64) {
    s0 = _mm_add_epi64(s0, _mm_load_si128(reinterpret_cast<const __m128i*>(p)));
    s1 = _mm_add_epi64(s1, _mm_load_si128(reinterpret_cast<const __m128i*>(p + 16)));
    s2 = _mm_add_epi64(s2, _mm_load_si128(reinterpret_cast<const __m128i*>(p + 32)));
    s3 = _mm_add_epi64(s3, _mm_load_si128(reinterpret_cast<const __m128i*>(p + 48)));
  }
  alignas(16) uint64_t lane[2];
  _mm_store_si128(reinterpret_cast<__m128i*>(lane), _mm_add_epi64(_mm_add_epi64(s0, s1), _mm_add_epi64(s2, s3)));
  return lane[0] + lane[1];
}
#else
uint64_t read_portable(const uint8_t* p, size_t bytes) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0, n = bytes / 8; i < n; i += 4) s0 += w[i], s1 += w[i + 1], s2 += w[i + 2], s3 += w[i + 3];
  return s0 + s1 + s2 + s3;
}
#endif

ReadFn choose(const char** name) {
#ifdef GEMKIT_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return *name = "avx512", read_avx512;
  if (__builtin_cpu_supports("avx2")) return *name = "avx2", read_avx2;
  return *name = "sse2", read_sse2;
#else
  return *name = "portable", read_portable;
#endif
}

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr, "read_bandwidth: %s\nusage: read_bandwidth [--mib 1024] [--reps 10] [--max-threads 2]\n",
               message.c_str());
  std::exit(2);
}

std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

struct PassTime {
  double wall = 0;  // release of the threads to the end of the slowest
  double cpu = 0;   // the largest CPU time of one thread (excludes time it was not running)
};

// One timed pass over [buf, buf + bytes) with n threads.
PassTime pass(ReadFn fn, const uint8_t* buf, size_t bytes, int n, uint64_t* checksum) {
  const size_t share = bytes / static_cast<size_t>(n);  // bytes is a multiple of 256 * n
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<Clock::time_point> end(static_cast<size_t>(n));
  std::vector<double> cpu(static_cast<size_t>(n));
  std::vector<uint64_t> sums(static_cast<size_t>(n));
  auto read = [&](int i) {
    const double c0 = thread_cpu_seconds();
    sums[size_t(i)] = fn(buf + size_t(i) * share, share);
    end[size_t(i)] = Clock::now();
    cpu[size_t(i)] = thread_cpu_seconds() - c0;
  };
  auto work = [&](int i) {
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) {
    }
    read(i);
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < n; ++i) threads.emplace_back(work, i);
  while (ready.load() < n - 1) std::this_thread::yield();
  const auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  read(0);
  for (auto& t : threads) t.join();
  for (uint64_t s : sums) *checksum += s;
  return {std::chrono::duration<double>(*std::max_element(end.begin(), end.end()) - t0).count(),
          *std::max_element(cpu.begin(), cpu.end())};
}

}  // namespace

int main(int argc, char** argv) {
  long mib = 1024, reps = 10, max_threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") usage("help");
    if (i + 1 >= argc) usage("missing value after " + k);
    char* end = nullptr;
    const long v = std::strtol(argv[++i], &end, 10);
    if (*end || v < 1) usage(k + ": expected a positive integer, got \"" + argv[i] + "\"");
    if (k == "--mib") mib = v;
    else if (k == "--reps") reps = v;
    else if (k == "--max-threads") max_threads = v;
    else usage("unknown option " + k);
  }
  const char* isa = nullptr;
  const ReadFn fn = choose(&isa);
  // A multiple of 256 bytes per thread for every thread count up to max_threads.
  size_t unit = 256;
  for (long n = 2; n <= max_threads; ++n) unit = std::lcm(unit, size_t(256) * size_t(n));
  const size_t bytes = (size_t(mib) << 20) / unit * unit;
  uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (!buf) return std::fprintf(stderr, "read_bandwidth: cannot allocate %ld MiB\n", mib), 1;
  // Touch every page (and give the words distinct values) before any timing.
  uint64_t* w = reinterpret_cast<uint64_t*>(buf);
  for (size_t i = 0, n = bytes / 8; i < n; ++i) w[i] = i * 0x9e3779b97f4a7c15ull;

  uint64_t checksum = 0;
  std::string json = "{\"tool\": \"read_bandwidth\", \"isa\": \"" + std::string(isa) + "\", \"buffer_mib\": " +
                     std::to_string(bytes >> 20) + ", \"reps\": " + std::to_string(reps) +
                     ", \"hardware_threads\": " + std::to_string(std::thread::hardware_concurrency());
  char num[64];
  for (int n = 1; n <= max_threads; ++n) {
    pass(fn, buf, bytes, n, &checksum);  // warm-up pass (threads, TLB), not counted
    std::vector<double> wall, cpu;
    for (long r = 0; r < reps; ++r) {
      const PassTime t = pass(fn, buf, bytes, n, &checksum);
      wall.push_back(t.wall);
      cpu.push_back(t.cpu);
    }
    std::sort(wall.begin(), wall.end());
    std::sort(cpu.begin(), cpu.end());
    const std::string key = ", \"threads_" + std::to_string(n) + "_gb_s";
    std::snprintf(num, sizeof num, "%.2f", double(bytes) / wall.front() / 1e9);
    json += key + "\": " + num;
    std::snprintf(num, sizeof num, "%.2f", double(bytes) / wall[wall.size() / 2] / 1e9);
    json += key + "_median\": " + num;
    std::snprintf(num, sizeof num, "%.2f", double(bytes) / cpu.front() / 1e9);
    json += key + "_cpu_time\": " + num;
  }
  std::snprintf(num, sizeof num, "%.2f", [] {
    double l = -1;
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
      if (std::fscanf(f, "%lf", &l) != 1) l = -1;
      std::fclose(f);
    }
    return l;
  }());
  json += std::string(", \"loadavg_1min_end\": ") + num + ", \"transparent_hugepage\": \"" +
          first_line("/sys/kernel/mm/transparent_hugepage/enabled") + "\", \"checksum\": " + std::to_string(checksum) + "}";
  std::printf("%s\n", json.c_str());
  std::free(buf);
  return 0;
}
