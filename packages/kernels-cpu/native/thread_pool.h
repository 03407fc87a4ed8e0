// thread_pool.h: a persistent pool; the caller runs slice 0, workers spin briefly then sleep between jobs.
#ifndef HALO_THREAD_POOL_H
#define HALO_THREAD_POOL_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define HALO_PAUSE() _mm_pause()
#else
#define HALO_PAUSE() std::this_thread::yield()
#endif

namespace halo {

/**
 * `threads` workers in all (the calling thread is worker 0). `run(fn)` calls fn(i) on every
 * worker i and returns when all are done. Workers spin briefly, then yield, for the next job (a step
 * issues a few hundred jobs back to back) and then sleep on a condition variable, so an idle pool costs
 * nothing on a shared machine. Jobs of concurrent callers are serialised. An exception thrown by a job on
 * any worker (e.g. std::bad_alloc) is caught there and rethrown from run() once every worker is done, so
 * it reaches the caller's handler instead of std::terminate on a pool thread.
 */
class ThreadPool {
 public:
  explicit ThreadPool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; i++) workers_.emplace_back([this, i] { loop(i); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }

  /**
   * Like run(fn), and then each worker other than the caller, once it has reported its part done, prefetches its
   * share of `prefetch_bytes` at `prefetch` into L2 (stopping early when the next job arrives). The caller goes
   * on to the serial work between two parallel phases while the memory system keeps streaming the weights the
   * next phase reads first.
   */
  void run(const std::function<void(int)>& fn, const void* prefetch, size_t prefetch_bytes) {
    std::lock_guard<std::mutex> serial(run_mutex_);
    if (threads_ == 1) {
      fn(0);
      return;
    }
    prefetch_.store(prefetch, std::memory_order_relaxed);
    prefetch_bytes_.store(prefetch_bytes, std::memory_order_relaxed);
    run_locked(fn);
  }

  void run(const std::function<void(int)>& fn) { run(fn, nullptr, 0); }

 private:
  void run_locked(const std::function<void(int)>& fn) {
    job_ = &fn;
    remaining_.store(threads_ - 1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_acq_rel);
    }
    wake_.notify_all();
    std::exception_ptr failure;
    try {
      fn(0);
    } catch (...) { failure = std::current_exception(); }
    // Spin briefly, then yield: on a shared machine a worker may be descheduled, and a waiter
    // burning its time slice would keep it off the core it needs.
    for (int spin = 0; remaining_.load(std::memory_order_acquire) != 0; spin++) {
      if (spin < 2048) HALO_PAUSE();
      else std::this_thread::yield();
    }
    job_ = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!failure) failure = error_;
      error_ = nullptr;
    }
    if (failure) std::rethrow_exception(failure);
  }

  // Prefetches this worker's slice of the hint, checking every 4 KiB whether a new job has been posted.
  void prefetch_tail(int index, uint64_t seen, const char* base, size_t bytes) {
#if defined(__x86_64__) || defined(_M_X64)
    const size_t share = bytes / static_cast<size_t>(threads_ - 1);
    const char* p = base + share * static_cast<size_t>(index - 1);
    const char* end = p + share;
    while (p < end && generation_.load(std::memory_order_relaxed) == seen) {
      const char* stop = p + 4096 < end ? p + 4096 : end;
      for (; p < stop; p += 64) _mm_prefetch(p, _MM_HINT_T1);
    }
#else
    (void)index;
    (void)seen;
    (void)base;
    (void)bytes;
#endif
  }

  void loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t now = generation_.load(std::memory_order_acquire);
      for (int spin = 0; now == seen && spin < 8192; spin++) {
        if (spin < 2048) HALO_PAUSE();
        else std::this_thread::yield();
        now = generation_.load(std::memory_order_acquire);
      }
      if (now == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        now = generation_.load(std::memory_order_acquire);
      }
      seen = now;
      if (stop_.load()) return;
      const char* prefetch = static_cast<const char*>(prefetch_.load(std::memory_order_relaxed));
      const size_t prefetch_bytes = prefetch_bytes_.load(std::memory_order_relaxed);
      try {
        (*job_)(index);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      remaining_.fetch_sub(1, std::memory_order_acq_rel);
      // Plain data copied before the job: valid after run() has returned (the weights outlive every step).
      if (prefetch != nullptr && prefetch_bytes > 0) prefetch_tail(index, seen, prefetch, prefetch_bytes);
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<const void*> prefetch_{nullptr};  // the current job's prefetch hint (see run)
  std::atomic<size_t> prefetch_bytes_{0};
  std::exception_ptr error_;  // the first exception of the current job's workers (guarded by mutex_)
};

/** Rows [begin, end) of worker i of n, split evenly in multiples of `align`. */
inline void split_range(int total, int workers, int index, int align, int* begin, int* end) {
  const int units = (total + align - 1) / align;
  const int b = static_cast<int>(static_cast<int64_t>(units) * index / workers) * align;
  const int e = static_cast<int>(static_cast<int64_t>(units) * (index + 1) / workers) * align;
  *begin = b < total ? b : total;
  *end = e < total ? e : total;
}

}  // namespace halo

#endif
