#include "runtime/repack.h"

#include <cstring>

#include "formats/block_quant.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace gemkit::runtime {

bool can_interleave_q4_0(int64_t rows, int64_t cols) { return rows > 0 && rows % 8 == 0 && cols > 0 && cols % 64 == 0; }

void interleave_q4_0(const uint8_t* src, int64_t rows, int64_t cols, BlockQ4x8* dst) {
  const int64_t blocks = cols / 32;
  const size_t row_bytes = size_t(blocks) * sizeof(BlockQ4);
  for (int64_t group = 0; group < rows / 8; ++group)
    for (int64_t b = 0; b < blocks; ++b) {
      BlockQ4x8& out = dst[group * blocks + b];
      for (int k = 0; k < 8; ++k) {
        const BlockQ4& in = reinterpret_cast<const BlockQ4*>(src + size_t(group * 8 + k) * row_bytes)[b];
        out.d[k] = in.d;
        for (int g = 0; g < 4; ++g) std::memcpy(out.qs + 32 * g + 4 * k, in.qs + 4 * g, 4);
      }
    }
}

void dequantize_row_q4_0x8(const BlockQ4x8* w, int64_t cols, int64_t row, float* out) {
  const int64_t blocks = cols / 32, k = row % 8;
  const BlockQ4x8* group = w + (row / 8) * blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    BlockQ4 block;
    block.d = group[b].d[k];
    for (int g = 0; g < 4; ++g) std::memcpy(block.qs + 4 * g, group[b].qs + 32 * g + 4 * k, 4);
    dequantize_row(QuantType::Q4_0, reinterpret_cast<const uint8_t*>(&block), 32, out + 32 * b);
  }
}

void release_mapped_pages(const void* p, size_t bytes) {
#if defined(__unix__) || defined(__APPLE__)
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) / page * page, end = (uintptr_t(p) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace gemkit::runtime
