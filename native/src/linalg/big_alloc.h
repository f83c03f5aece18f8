// Work buffers and results of 2 MiB and more get their own anonymous mapping, aligned to and
// advised as transparent huge pages: first touch then costs one page fault per 2 MiB instead of
// 512 (4 KiB faults were ~8% of an OPCM step's CPU time on a 2-core VM), and freeing unmaps, so
// nothing is retained between jobs. Where THP is off the advice is ignored. Smaller blocks: malloc.
#pragma once
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace cmerge {

void* BigAlloc(std::size_t bytes);  // throws std::bad_alloc
void BigFree(void* p, std::size_t bytes) noexcept;

// Allocator for large std::vectors. `BigVector<T> v(n)` leaves the elements uninitialized (fresh
// pages are zero anyway, and most buffers are overwritten whole); `v(n, value)` fills.
template <class T>
struct BigAllocator {
  using value_type = T;
  BigAllocator() = default;
  template <class U>
  BigAllocator(const BigAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(BigAlloc(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { BigFree(p, n * sizeof(T)); }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const BigAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const BigAllocator<U>&) const noexcept { return false; }
};

template <class T>
using BigVector = std::vector<T, BigAllocator<T>>;

}  // namespace cmerge
