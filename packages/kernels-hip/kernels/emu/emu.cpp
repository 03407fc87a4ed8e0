// emu.cpp: the CPU emulator behind halo_gpu.h's EMU branch — work-items as fibers with an own context switch, a
// deterministic per-block scheduler with deadlock detection, the kernel registry, and launches over a small pool.
//
// Scheduling. A block's fibers run on one OS thread (HALO_SHARED memory is thread_local). A fiber runs until it
// reaches a sync point (barrier, exchange, ballot) or returns, then switches straight to the next fiber of the run
// queue — no trip through a scheduler context, so one arrival costs one switch. The queue starts as 0…n−1; a released
// wave (all 32 lanes arrived) goes to the front, lane 0 first, so a wave runs its chain of exchanges while its stacks
// are hot; a released barrier queues every thread in order. An empty queue with threads still waiting is a deadlock:
// control returns to run(), which names the waiting threads. The order depends only on the kernel, never on timing.
//
// Performance notes (emu_test's benchmark, 2-core AMD EPYC VM shared with other jobs, g++ 12 -O2, best of 5):
// - The asm switch (six registers, MXCSR, x87 control word) costs ~8–12 ns; a wave32 exchange ~11–19 ns per lane;
//   a 256-thread block doing 8 wave butterflies, a barrier and one more butterfly (~2000 switches) ~35–50 µs; an
//   empty 256-thread block ~7 µs, a 32-thread one ~1 µs. Dropping the MXCSR/x87 save and restore measured no
//   difference within the noise, so it stays (a kernel that changes its rounding mode changes only its own).
// - swapcontext (the fallback, -DHALO_EMU_UCONTEXT) measured ~400 ns per switch: a sigprocmask system call each.
// - Stacks 64 KiB + a page apart put every fiber's top frame in the same L1 sets; colouring the tops by one cache line
//   per fiber cut an exchange from ~25–35 ns to ~11–19 ns per lane.
// - std::thread::hardware_concurrency() reads sysfs (~5 µs a call): asked once, not per launch.
// - ASan's detect_stack_use_after_return maps a fake stack per fiber; handing it back at every fiber's end made a
//   sanitized 256-thread launch take ~8 ms of munmap/mmap, so fibers keep theirs across blocks.
// Stacks (64 KiB + a PROT_NONE guard page each) are mapped once per OS thread and reused by every launch.
#include "emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HALO_EMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HALO_EMU_ASAN 1
#endif
#if defined(HALO_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(HALO_EMU_UCONTEXT) && defined(__ELF__) && defined(__x86_64__)
#define HALO_EMU_ASM_X64 1
#elif !defined(HALO_EMU_UCONTEXT) && defined(__ELF__) && defined(__aarch64__)
#define HALO_EMU_ASM_A64 1
#else
#define HALO_EMU_USE_UCONTEXT 1
#include <ucontext.h>
#endif

// Initial-exec TLS for the one pointer every kernel primitive reads: no __tls_get_addr call when the emulator lives
// in a dlopen'ed addon (8 bytes of the static TLS surplus glibc keeps for such libraries).
#if defined(__ELF__) && !defined(HALO_EMU_ASAN)
#define HALO_EMU_TLS __attribute__((tls_model("initial-exec")))
#else
#define HALO_EMU_TLS
#endif

// ---------------------------------------------------------------------------------------------------------------
// Context switch. halo_emu_switch(save, load) pushes the callee-saved state on the current stack, stores the stack
// pointer in *save, loads `load` and pops the state saved there. A new fiber's stack is given a frame that "returns"
// into halo_emu_start, which calls entry(arg) (entry never returns).
#if defined(HALO_EMU_ASM_X64)
// System V x86-64: rbp rbx r12–r15, MXCSR and the x87 control word (the rest is caller-saved).
asm(R"(
  .text
  .globl halo_emu_switch
  .hidden halo_emu_switch
  .type halo_emu_switch, @function
  .p2align 4
halo_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size halo_emu_switch, .-halo_emu_switch

  .globl halo_emu_start
  .hidden halo_emu_start
  .type halo_emu_start, @function
  .p2align 4
halo_emu_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size halo_emu_start, .-halo_emu_start
)");
#elif defined(HALO_EMU_ASM_A64)
// AAPCS64: x19–x28, fp (x29), lr (x30), d8–d15 and FPCR; 176 bytes keep sp 16-byte aligned. FPCR is written only
// when it differs (a write can stall the pipeline on some cores; fibers of one block normally share the same mode).
asm(R"(
  .text
  .globl halo_emu_switch
  .hidden halo_emu_switch
  .type halo_emu_switch, %function
  .p2align 4
halo_emu_switch:
  sub sp, sp, #176
  stp x19, x20, [sp, #0]
  stp x21, x22, [sp, #16]
  stp x23, x24, [sp, #32]
  stp x25, x26, [sp, #48]
  stp x27, x28, [sp, #64]
  stp x29, x30, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  mrs x9, fpcr
  str x9, [sp, #160]
  mov x9, sp
  str x9, [x0]
  mov sp, x1
  ldp x19, x20, [sp, #0]
  ldp x21, x22, [sp, #16]
  ldp x23, x24, [sp, #32]
  ldp x25, x26, [sp, #48]
  ldp x27, x28, [sp, #64]
  ldp x29, x30, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  ldr x9, [sp, #160]
  mrs x10, fpcr
  cmp x9, x10
  b.eq 1f
  msr fpcr, x9
1:
  add sp, sp, #176
  ret
  .size halo_emu_switch, .-halo_emu_switch

  .globl halo_emu_start
  .hidden halo_emu_start
  .type halo_emu_start, %function
  .p2align 4
halo_emu_start:
  mov x0, x19
  blr x20
  brk #0
  .size halo_emu_start, .-halo_emu_start
)");
#endif

#if !defined(HALO_EMU_USE_UCONTEXT)
extern "C" void halo_emu_switch(void** save, void* load);
extern "C" void halo_emu_start();
#endif

namespace halo_emu {
namespace {

using Entry = void (*)(void*);

struct Context {
#if defined(HALO_EMU_USE_UCONTEXT)
  ucontext_t uc;
#else
  void* sp = nullptr;
#endif
};

#if defined(HALO_EMU_USE_UCONTEXT)
void context_entry(unsigned hi, unsigned lo, unsigned entry_hi, unsigned entry_lo) {
  const uintptr_t arg = (static_cast<uintptr_t>(hi) << 16 << 16) | lo, entry = (static_cast<uintptr_t>(entry_hi) << 16 << 16) | entry_lo;
  reinterpret_cast<Entry>(entry)(reinterpret_cast<void*>(arg));
}
#endif

/** The floating-point control state a new fiber starts with: the launching thread's (read once per block). */
uint64_t fp_environment() {
#if defined(HALO_EMU_ASM_X64)
  uint32_t mxcsr;
  uint16_t fcw;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fcw));
  return mxcsr | static_cast<uint64_t>(fcw) << 32;
#elif defined(HALO_EMU_ASM_A64)
  uint64_t fpcr;
  asm volatile("mrs %0, fpcr" : "=r"(fpcr));
  return fpcr;
#else
  return 0;  // getcontext captures it
#endif
}

/** Prepares `context` to run entry(arg) on [stack, stack + size) when first switched to, with `fp` from fp_environment(). */
bool context_make(Context* context, char* stack, size_t size, Entry entry, void* arg, uint64_t fp) {
#if defined(HALO_EMU_USE_UCONTEXT)
  (void)fp;
  if (getcontext(&context->uc) != 0) return false;
  context->uc.uc_stack.ss_sp = stack;
  context->uc.uc_stack.ss_size = size;
  context->uc.uc_link = nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(arg), e = reinterpret_cast<uintptr_t>(entry);
  makecontext(&context->uc, reinterpret_cast<void (*)()>(context_entry), 4, static_cast<unsigned>(a >> 16 >> 16), static_cast<unsigned>(a),
              static_cast<unsigned>(e >> 16 >> 16), static_cast<unsigned>(e));
  return true;
#elif defined(HALO_EMU_ASM_X64)
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~static_cast<uintptr_t>(15);
  top -= 16;  // after the frame's `ret`, rsp = top (16-aligned) before halo_emu_start's call, as the ABI wants
  uint64_t* frame = reinterpret_cast<uint64_t*>(top) - 8;
  frame[0] = fp;                                     // MXCSR, x87 control word
  frame[1] = 0;                                      // r15
  frame[2] = 0;                                      // r14
  frame[3] = reinterpret_cast<uintptr_t>(entry);     // r13
  frame[4] = reinterpret_cast<uintptr_t>(arg);       // r12
  frame[5] = 0;                                      // rbx
  frame[6] = 0;                                      // rbp: the end of the frame chain for debuggers
  frame[7] = reinterpret_cast<uintptr_t>(&halo_emu_start);
  reinterpret_cast<uint64_t*>(top)[0] = 0;           // a null return address above the entry frame
  context->sp = frame;
  return true;
#else  // HALO_EMU_ASM_A64
  const uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~static_cast<uintptr_t>(15);
  uint64_t* frame = reinterpret_cast<uint64_t*>(top - 176);
  std::memset(frame, 0, 176);
  frame[0] = reinterpret_cast<uintptr_t>(arg);                     // x19
  frame[1] = reinterpret_cast<uintptr_t>(entry);                   // x20
  frame[11] = reinterpret_cast<uintptr_t>(&halo_emu_start);        // x30 (lr); x29 = 0 ends the frame chain
  frame[20] = fp;                                                  // FPCR
  context->sp = frame;
  return true;
#endif
}

inline void context_switch(Context* from, Context* to) {
#if defined(HALO_EMU_USE_UCONTEXT)
  swapcontext(&from->uc, &to->uc);
#else
  halo_emu_switch(&from->sp, to->sp);
#endif
}

// ---------------------------------------------------------------------------------------------------------------
#if defined(HALO_EMU_ASAN)
constexpr size_t kStackBytes = 256 * 1024;  // ASan's redzones make frames several times larger
#else
constexpr size_t kStackBytes = 64 * 1024;
#endif
constexpr unsigned kWave = 32;          // lanes per wave (HALO_WAVE)
constexpr unsigned kMaxThreads = 1024;  // the block-size limit of every GPU halo targets
constexpr int kListedWaiters = 8;

enum class State : uint8_t { Ready, Barrier, Exchange, Ballot, Done };

const char* state_name(State state) {
  switch (state) {
    case State::Barrier: return "barrier";
    case State::Exchange: return "exchange";
    case State::Ballot: return "ballot";
    case State::Done: return "returned";
    default: return "running";
  }
}

struct Fiber {
  Context context;
  char* stack = nullptr;  // [stack, stack + kStackBytes); the guard page lies just below
  unsigned index = 0;
  State state = State::Ready;
#if defined(HALO_EMU_ASAN)
  void* fake_stack = nullptr;
#endif
};

/** One wave's sync point in progress: arrivals so far, what they called and their operands. */
struct Wave {
  unsigned arrived = 0;
  State kind = State::Ready;
  uint32_t mask = 0;  // ballot result
  uint32_t values[kWave];
  uint8_t sources[kWave];
  uint32_t results[kWave];
};

std::atomic<uint64_t> g_switches{0};
std::atomic<unsigned> g_threads{0};

std::string block_name(const KernelInfo& kernel, unsigned x, unsigned y, unsigned z) {
  return "kernel " + std::string(kernel.name) + " block (" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}

/** What one OS thread needs to run blocks: fibers with their stacks, the run queue, wave and barrier state. */
class Worker {
 public:
  ~Worker() {
    if (mapping_ != nullptr) munmap(mapping_, mapping_bytes_);
  }

  /** Runs one block to completion; false with `error` on a deadlock, a divergent sync point or a setup failure. */
  bool run_block(const KernelInfo& kernel, const void* args, unsigned bx, unsigned by, unsigned bz, unsigned threads, std::string* error);

  // The primitives, called on a fiber of this worker.
  void barrier();
  uint32_t exchange(uint32_t value, unsigned source);
  uint32_t ballot(bool predicate);
  unsigned thread() const { return current_->index; }
  unsigned block_x() const { return block_[0]; }
  unsigned block_y() const { return block_[1]; }
  unsigned block_z() const { return block_[2]; }

 private:
  static void fiber_main(void* fiber);
  bool reserve(unsigned threads, std::string* error);
  /** The current fiber waits: switches to the next queued fiber, or back to run_block when none is queued. */
  void suspend(Fiber* self);
  [[noreturn]] void finish(Fiber* self);
  [[noreturn]] void fail(Fiber* self, std::string message);
  void switch_to(Fiber* self, Context* to_context, const char* to_stack, size_t to_size, bool leaving_for_good);
  void resumed(Fiber* self);
  Wave& arrive(Fiber* self, State kind);
  [[noreturn]] __attribute__((noinline, cold)) void mismatch(Fiber* self, State kind, State waiting_kind);

  void push_back(uint32_t fiber) {
    queue_[(head_ + queued_) & queue_mask_] = fiber;
    queued_++;
  }
  void push_front(uint32_t fiber) {
    head_ = (head_ - 1) & queue_mask_;
    queue_[head_] = fiber;
    queued_++;
  }

  // Stacks and fibers, grown to the largest block seen and reused.
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  unsigned capacity_ = 0;
  std::unique_ptr<Fiber[]> fibers_;
  std::unique_ptr<Wave[]> waves_;
  std::vector<uint32_t> queue_;
  uint32_t queue_mask_ = 0, head_ = 0, queued_ = 0;

  // The block in progress.
  const KernelInfo* kernel_ = nullptr;
  const void* args_ = nullptr;
  unsigned block_[3] = {0, 0, 0};
  unsigned threads_ = 0, at_barrier_ = 0, finished_ = 0;
  Fiber* current_ = nullptr;
  Context main_;
  Context discard_;  // where a returning fiber's context goes: it is never resumed
  bool failed_ = false;
  std::string failure_;
  uint64_t switches_ = 0;
#if defined(HALO_EMU_ASAN)
  void* main_fake_stack_ = nullptr;
  const void* main_stack_ = nullptr;
  size_t main_stack_bytes_ = 0;
  bool from_main_ = false;
  bool abandoned_ = false;  // the last block ended with fibers mid-kernel
#endif
};

// The worker whose block runs on this OS thread right now (null outside a block): what the primitives read.
thread_local Worker* t_active HALO_EMU_TLS = nullptr;

Worker& thread_worker() {
  static thread_local Worker worker;
  return worker;
}

bool Worker::reserve(unsigned threads, std::string* error) {
  if (threads <= capacity_) return true;
  const unsigned want = std::max(threads, 256u);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t stack = (kStackBytes + page - 1) / page * page, slot = stack + page;
  void* mapping = mmap(nullptr, slot * want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED) {
    *error = "the emulator cannot map " + std::to_string(slot * want) + " bytes of fiber stacks (" + std::strerror(errno) + ")";
    return false;
  }
  // A guard page below each stack: a kernel that overflows its 64 KiB faults there instead of corrupting a neighbour.
  for (unsigned i = 0; i < want; i++) {
    if (mprotect(static_cast<char*>(mapping) + slot * i, page, PROT_NONE) != 0) {
      *error = std::string("the emulator cannot protect a fiber stack guard page (") + std::strerror(errno) + ")";
      munmap(mapping, slot * want);
      return false;
    }
  }
  std::unique_ptr<Fiber[]> fibers(new (std::nothrow) Fiber[want]);
  std::unique_ptr<Wave[]> waves(new (std::nothrow) Wave[want / kWave]);
  if (fibers == nullptr || waves == nullptr) {
    *error = "the emulator has no memory for " + std::to_string(want) + " fibers";
    munmap(mapping, slot * want);
    return false;
  }
  if (mapping_ != nullptr) munmap(mapping_, mapping_bytes_);
#if defined(HALO_EMU_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(mapping, slot * want);  // the shadow may still describe an earlier mapping here
#endif
  mapping_ = mapping;
  mapping_bytes_ = slot * want;
  fibers_ = std::move(fibers);
  waves_ = std::move(waves);
  for (unsigned i = 0; i < want; i++) {
    fibers_[i].stack = static_cast<char*>(mapping) + slot * i + page;
    fibers_[i].index = i;
  }
  uint32_t ring = 1;
  while (ring < want) ring <<= 1;
  queue_.assign(ring, 0);
  queue_mask_ = ring - 1;
  capacity_ = want;
  return true;
}

void Worker::fiber_main(void* pointer) {
  Fiber* self = static_cast<Fiber*>(pointer);
  Worker* worker = t_active;
  worker->resumed(self);
  worker->kernel_->entry(worker->args_);
  worker->finish(self);
}

void Worker::resumed(Fiber* self) {
#if defined(HALO_EMU_ASAN)
  const void* from_stack = nullptr;
  size_t from_bytes = 0;
  __sanitizer_finish_switch_fiber(self->fake_stack, &from_stack, &from_bytes);
  if (from_main_) {
    main_stack_ = from_stack;
    main_stack_bytes_ = from_bytes;
    from_main_ = false;
  }
#else
  (void)self;
#endif
}

void Worker::switch_to(Fiber* self, Context* to_context, const char* to_stack, size_t to_size, bool leaving_for_good) {
  switches_++;
#if defined(HALO_EMU_ASAN)
  // The fake stack (detect_stack_use_after_return) is kept even when the fiber leaves for good: the fiber's next
  // block reuses it, where handing it back (nullptr) would make ASan unmap it and map a new one per fiber per block.
  __sanitizer_start_switch_fiber(&self->fake_stack, to_stack, to_size);
#else
  (void)to_stack;
  (void)to_size;
  (void)leaving_for_good;
#endif
  context_switch(leaving_for_good ? &discard_ : &self->context, to_context);
}

inline void Worker::suspend(Fiber* self) {
  if (queued_ == 0) {
    current_ = nullptr;
#if defined(HALO_EMU_ASAN)
    switch_to(self, &main_, static_cast<const char*>(main_stack_), main_stack_bytes_, true);
#else
    switch_to(self, &main_, nullptr, 0, true);
#endif
    __builtin_unreachable();  // a dry queue with this fiber waiting is a deadlock: run_block never resumes it
  }
  Fiber* next = &fibers_[queue_[head_]];
  head_ = (head_ + 1) & queue_mask_;
  queued_--;
  if (next == self) return;  // released and first in line: carry on without a switch
  current_ = next;
  switch_to(self, &next->context, next->stack, kStackBytes, false);
  resumed(self);
}

void Worker::finish(Fiber* self) {
  self->state = State::Done;
  finished_++;
  if (queued_ == 0) {
    current_ = nullptr;
#if defined(HALO_EMU_ASAN)
    switch_to(self, &main_, static_cast<const char*>(main_stack_), main_stack_bytes_, true);
#else
    switch_to(self, &main_, nullptr, 0, true);
#endif
  } else {
    Fiber* next = &fibers_[queue_[head_]];
    head_ = (head_ + 1) & queue_mask_;
    queued_--;
    current_ = next;
    switch_to(self, &next->context, next->stack, kStackBytes, true);
  }
  __builtin_unreachable();
}

void Worker::fail(Fiber* self, std::string message) {
  failed_ = true;
  failure_ = std::move(message);
  current_ = nullptr;
  // This fiber is abandoned mid-kernel; its stack is reinitialised (and unpoisoned under ASan) by the next block.
#if defined(HALO_EMU_ASAN)
  switch_to(self, &main_, static_cast<const char*>(main_stack_), main_stack_bytes_, true);
#else
  switch_to(self, &main_, nullptr, 0, true);
#endif
  __builtin_unreachable();
}

void Worker::barrier() {
  Fiber* self = current_;
  self->state = State::Barrier;
  if (++at_barrier_ == threads_) {
    // Everyone arrived, so nobody is queued: requeue the whole block in thread order.
    at_barrier_ = 0;
    for (unsigned i = 0; i < threads_; i++) {
      fibers_[i].state = State::Ready;
      push_back(i);
    }
  }
  suspend(self);
}

inline Wave& Worker::arrive(Fiber* self, State kind) {
  Wave& wave = waves_[self->index / kWave];
  if (wave.arrived == 0) wave.kind = kind;
  else if (wave.kind != kind) mismatch(self, kind, wave.kind);
  self->state = kind;
  wave.arrived++;
  return wave;
}

void Worker::mismatch(Fiber* self, State kind, State waiting_kind) {
  // Lanes of one wave at different wave operations: neither can complete on a GPU.
  unsigned waiting = self->index / kWave * kWave;
  while (fibers_[waiting].state != waiting_kind) waiting++;
  fail(self, block_name(*kernel_, block_[0], block_[1], block_[2]) + ": thread " + std::to_string(self->index) + " called " + state_name(kind) +
                 " while thread " + std::to_string(waiting) + " of its wave waits in " + state_name(waiting_kind) +
                 " (every lane of a wave must reach the same wave operation)");
}

uint32_t Worker::exchange(uint32_t value, unsigned source) {
  Fiber* self = current_;
  const unsigned lane = self->index % kWave;
  Wave& wave = arrive(self, State::Exchange);
  wave.values[lane] = value;
  wave.sources[lane] = static_cast<uint8_t>(source % kWave);
  if (wave.arrived == kWave) {
    wave.arrived = 0;
    for (unsigned l = 0; l < kWave; l++) wave.results[l] = wave.values[wave.sources[l]];
    Fiber* lanes = &fibers_[self->index - lane];
    for (unsigned l = kWave; l-- > 0;) {
      lanes[l].state = State::Ready;
      push_front(lanes[l].index);
    }
  }
  suspend(self);
  return wave.results[lane];
}

uint32_t Worker::ballot(bool predicate) {
  Fiber* self = current_;
  const unsigned lane = self->index % kWave;
  Wave& wave = arrive(self, State::Ballot);
  if (wave.arrived == 1) wave.values[0] = 0;
  if (predicate) wave.values[0] |= 1u << lane;
  if (wave.arrived == kWave) {
    wave.arrived = 0;
    wave.mask = wave.values[0];
    Fiber* lanes = &fibers_[self->index - lane];
    for (unsigned l = kWave; l-- > 0;) {
      lanes[l].state = State::Ready;
      push_front(lanes[l].index);
    }
  }
  suspend(self);
  return wave.mask;
}

bool Worker::run_block(const KernelInfo& kernel, const void* args, unsigned bx, unsigned by, unsigned bz, unsigned threads, std::string* error) {
  if (!reserve(threads, error)) return false;
  kernel_ = &kernel;
  args_ = args;
  block_[0] = bx;
  block_[1] = by;
  block_[2] = bz;
  threads_ = threads;
  at_barrier_ = 0;
  finished_ = 0;
  failed_ = false;
  head_ = 0;
  queued_ = 0;
  for (unsigned w = 0; w < threads / kWave; w++) waves_[w].arrived = 0;
#if defined(HALO_EMU_ASAN)
  if (abandoned_) ASAN_UNPOISON_MEMORY_REGION(mapping_, mapping_bytes_);
  abandoned_ = false;
#endif
  const uint64_t fp = fp_environment();
  for (unsigned i = 0; i < threads; i++) {
    Fiber& fiber = fibers_[i];
    fiber.state = State::Ready;
#if defined(HALO_EMU_ASAN)
    // Frames that never returned keep their redzones poisoned: fiber_main's near the top of every stack (after an
    // abandoned block, the whole mapping was cleared above).
    ASAN_UNPOISON_MEMORY_REGION(fiber.stack + kStackBytes - 16 * 1024, 16 * 1024);
#endif
    // Stack colouring: stack tops 64 KiB + a page apart would all map to the same L1 sets, and a wave cycling through
    // its 32 fibers would miss on every switch; shifting each top by a cache line per fiber spreads them out.
    const size_t colour = (i % 64) * 64;
    if (!context_make(&fiber.context, fiber.stack, kStackBytes - colour, &Worker::fiber_main, &fiber, fp)) {
      *error = "the emulator cannot create a fiber context";
      return false;
    }
    push_back(i);
  }
  Fiber* first = &fibers_[queue_[head_]];
  head_ = (head_ + 1) & queue_mask_;
  queued_--;
  current_ = first;
  t_active = this;
  switches_++;
#if defined(HALO_EMU_ASAN)
  from_main_ = true;
  __sanitizer_start_switch_fiber(&main_fake_stack_, first->stack, kStackBytes);
  context_switch(&main_, &first->context);
  __sanitizer_finish_switch_fiber(main_fake_stack_, nullptr, nullptr);
#else
  context_switch(&main_, &first->context);
#endif
  t_active = nullptr;
  g_switches.fetch_add(switches_, std::memory_order_relaxed);
  switches_ = 0;
  if (finished_ == threads && !failed_) return true;
#if defined(HALO_EMU_ASAN)
  abandoned_ = true;
#endif
  if (failed_) {
    *error = std::move(failure_);
    return false;
  }

  // Nothing queued, not everyone returned: every remaining thread waits for one that will never come.
  unsigned counts[5] = {0, 0, 0, 0, 0};
  std::string listed;
  int named = 0;
  for (unsigned i = 0; i < threads; i++) {
    const State state = fibers_[i].state;
    counts[static_cast<int>(state)]++;
    if (state != State::Done && named < kListedWaiters) { listed += (named++ == 0 ? "" : ", ") + std::to_string(i) + " (" + state_name(state) + ")"; }
  }
  *error = block_name(kernel, bx, by, bz) + " of " + std::to_string(threads) + " threads is deadlocked: " + std::to_string(counts[1]) + " wait at a barrier, " +
           std::to_string(counts[2]) + " in exchange, " + std::to_string(counts[3]) + " in ballot, " + std::to_string(counts[4]) +
           " returned; first waiting threads: " + listed +
           ". Every thread of a block must reach each barrier (no early return before one), every lane of a wave each exchange and ballot.";
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Launches: blocks are handed out in linear order (x fastest) to the calling thread and up to threads − 1 helpers.
struct Launch {
  const KernelInfo* kernel;
  Dim3 grid;
  unsigned threads;
  const void* args;
  uint64_t total;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  uint64_t error_block = UINT64_MAX;  // the lowest failing block, whichever thread ran it: the same message every run
  std::string error;
};

void work(Launch& launch) {
  Worker& worker = thread_worker();
  std::string error;
  while (!launch.failed.load(std::memory_order_relaxed)) {
    const uint64_t block = launch.next.fetch_add(1, std::memory_order_relaxed);
    if (block >= launch.total) break;
    const uint64_t plane = static_cast<uint64_t>(launch.grid.x) * launch.grid.y;
    const unsigned bx = static_cast<unsigned>(block % launch.grid.x), by = static_cast<unsigned>(block / launch.grid.x % launch.grid.y),
                   bz = static_cast<unsigned>(block / plane);
    if (!worker.run_block(*launch.kernel, launch.args, bx, by, bz, launch.threads, &error)) {
      std::lock_guard<std::mutex> lock(launch.error_mutex);
      if (block < launch.error_block) {
        launch.error_block = block;
        launch.error = error;
      }
      launch.failed.store(true, std::memory_order_relaxed);
    }
  }
}

/** Helper threads, started on first need and parked on a condition variable between launches. Never destroyed
 *  (leaked on purpose): at process exit they are still parked, and no destructor must wait for them. */
class Pool {
 public:
  /** Runs `launch` on the calling thread plus up to `helpers` pool threads. */
  void run(Launch& launch, unsigned helpers) {
    std::unique_lock<std::mutex> exclusive(launch_mutex_, std::try_to_lock);
    if (!exclusive.owns_lock() || !start(helpers)) {
      work(launch);  // another launch holds the helpers (or none could start): this one runs alone, same results
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      launch_ = &launch;
      helpers_ = helpers;
      busy_ = helpers;
      generation_++;
    }
    wake_.notify_all();
    work(launch);
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [&] { return busy_ == 0; });
    launch_ = nullptr;
  }

 private:
  bool start(unsigned helpers) {
    while (started_ < helpers) {
      try {
        std::thread(&Pool::loop, this, started_).detach();
      } catch (const std::system_error&) { return false; }
      started_++;
    }
    return true;
  }

  void loop(unsigned index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= helpers_) continue;
      Launch* launch = launch_;
      lock.unlock();
      work(*launch);
      lock.lock();
      if (--busy_ == 0) idle_.notify_all();
    }
  }

  std::mutex launch_mutex_;  // one launch at a time uses the helpers
  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  unsigned started_ = 0;  // guarded by launch_mutex_
  Launch* launch_ = nullptr;
  unsigned helpers_ = 0, busy_ = 0;
  uint64_t generation_ = 0;
};

Pool& pool() {
  static Pool* instance = new Pool();
  return *instance;
}

const KernelRegistration* g_registry = nullptr;  // constant-initialised: safe for registrations in any TU's static init

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
unsigned thread_x() {
  Worker* worker = t_active;
  return worker != nullptr ? worker->thread() : 0;
}
unsigned block_x() {
  Worker* worker = t_active;
  return worker != nullptr ? worker->block_x() : 0;
}
unsigned block_y() {
  Worker* worker = t_active;
  return worker != nullptr ? worker->block_y() : 0;
}
unsigned block_z() {
  Worker* worker = t_active;
  return worker != nullptr ? worker->block_z() : 0;
}
void barrier() {
  Worker* worker = t_active;
  if (worker != nullptr) worker->barrier();
}
uint32_t exchange_u32(uint32_t value, unsigned src) {
  Worker* worker = t_active;
  return worker != nullptr ? worker->exchange(value, src) : value;
}
uint32_t ballot(bool predicate) {
  Worker* worker = t_active;
  return worker != nullptr ? worker->ballot(predicate) : (predicate ? 1u : 0u);
}

KernelRegistration::KernelRegistration(const char* name, unsigned threads, size_t args_bytes, void (*entry)(const void*))
    : info{name, threads, args_bytes, entry}, next(g_registry) {
  g_registry = this;
}

const KernelInfo* find_kernel(const char* name) {
  if (name == nullptr) return nullptr;
  for (const KernelRegistration* r = g_registry; r != nullptr; r = r->next)
    if (std::strcmp(r->info.name, name) == 0) return &r->info;
  return nullptr;
}

bool is_registered(const void* kernel) {
  for (const KernelRegistration* r = g_registry; r != nullptr; r = r->next)
    if (&r->info == kernel) return true;
  return false;
}

/** min(2, hardware threads), asked once: hardware_concurrency() reads sysfs on every call (~5 µs). */
unsigned default_threads() {
  static const unsigned threads = std::max(1u, std::min(2u, std::thread::hardware_concurrency()));
  return threads;
}

unsigned set_threads(unsigned threads) {
  g_threads.store(threads, std::memory_order_relaxed);
  return threads != 0 ? threads : default_threads();
}

uint64_t switch_count() { return g_switches.load(std::memory_order_relaxed); }

bool check_launch(const KernelInfo& kernel, Dim3 grid, Dim3 block, std::string* error) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  const std::string name = kernel.name != nullptr ? kernel.name : "(unnamed)";
  auto refuse = [&](const std::string& why) {
    *error = "kernel " + name + ": " + why;
    return false;
  };
  const std::string grid_text = "grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," + std::to_string(grid.z) + ")";
  if (kernel.entry == nullptr) return refuse("has no entry function");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return refuse(grid_text + " has a zero dimension; skip empty launches");
  if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) return refuse(grid_text + " exceeds the GPU limits (x < 2^31, y and z up to 65535)");
  if (block.y != 1 || block.z != 1) return refuse("block.y and block.z must be 1 (found " + std::to_string(block.y) + ", " + std::to_string(block.z) + ")");
  if (block.x == 0 || block.x % kWave != 0 || block.x > kMaxThreads)
    return refuse("block.x = " + std::to_string(block.x) + " must be a positive multiple of 32 up to 1024 (whole waves)");
  if (block.x > kernel.threads)
    return refuse("block.x = " + std::to_string(block.x) + " exceeds the " + std::to_string(kernel.threads) + " threads the kernel is declared for");
  return true;
}

bool run(const KernelInfo& kernel, Dim3 grid, Dim3 block, const void* args, std::string* error) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  if (t_active != nullptr) {
    *error = "kernel " + std::string(kernel.name != nullptr ? kernel.name : "(unnamed)") +
             ": launched from inside a kernel (the emulator has no dynamic parallelism)";
    return false;
  }
  if (!check_launch(kernel, grid, block, error)) return false;
  if (kernel.args_bytes != 0 && args == nullptr) {
    *error = "kernel " + std::string(kernel.name) + ": null argument block";
    return false;
  }

  Launch launch;
  launch.kernel = &kernel;
  launch.grid = grid;
  launch.threads = block.x;
  launch.args = args;
  launch.total = static_cast<uint64_t>(grid.x) * grid.y * grid.z;
  unsigned threads = g_threads.load(std::memory_order_relaxed);
  if (threads == 0) threads = default_threads();
  const uint64_t helpers = std::min<uint64_t>(threads - 1, launch.total - 1);
  if (helpers == 0) work(launch);
  else pool().run(launch, static_cast<unsigned>(helpers));
  if (launch.failed.load()) {
    *error = launch.error;
    return false;
  }
  return true;
}

}  // namespace halo_emu
