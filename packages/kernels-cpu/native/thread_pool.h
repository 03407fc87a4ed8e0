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

  void run(const std::function<void(int)>& fn) {
    std::lock_guard<std::mutex> serial(run_mutex_);
    if (threads_ == 1) {
      fn(0);
      return;
    }
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
    } catch (...) {
      failure = std::current_exception();
    }
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

 private:
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
      try {
        (*job_)(index);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      remaining_.fetch_sub(1, std::memory_order_acq_rel);
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
