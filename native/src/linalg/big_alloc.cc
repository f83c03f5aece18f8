#include "big_alloc.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>

namespace cmerge {
namespace {

constexpr std::size_t kHuge = std::size_t{2} << 20;

std::size_t RoundUp(std::size_t bytes) { return (bytes + kHuge - 1) & ~(kHuge - 1); }

}  // namespace

void* BigAlloc(std::size_t bytes) {
  if (bytes < kHuge) {
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  const std::size_t len = RoundUp(bytes);
  if (len < bytes) throw std::bad_alloc();  // overflow
  // Map one huge page more than needed and cut the unaligned ends off.
  void* raw = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHuge - 1) & ~static_cast<std::uintptr_t>(kHuge - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t end = start + len + kHuge;
  if (end > aligned + len) munmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
  madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

void BigFree(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (bytes < kHuge) std::free(p);
  else munmap(p, RoundUp(bytes));
}

}  // namespace cmerge
