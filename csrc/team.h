// A team of threads sharing one block of images: a leader runs the sampling loop and hands
// the large products of each step, cut into chunks, to helpers that wait spinning (a step
// lasts microseconds: far less than waking a sleeping thread).
//
// Chunks are claimed one at a time by whoever comes first, the leader included, so a stage
// completes even when no helper runs: when at::parallel_for runs the team's members one after
// another on one thread (leader first), the leader does all the work and the helpers, started
// after `finish`, return at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace pixelcnn_native {

class Team {
 public:
  explicit Team(int64_t members) : members_(members) {}

  int64_t members() const { return members_; }

  // Leader: fn(chunk) for every chunk < n, spread over the team; returns when all are done.
  template <typename F>
  void run(int64_t n, const F& fn) {
    if (members_ == 1 || n == 1) {
      for (int64_t chunk = 0; chunk < n; ++chunk) fn(chunk);
      return;
    }
    fn_ = &fn;
    call_ = [](const void* f, int64_t chunk) { (*static_cast<const F*>(f))(chunk); };
    done_.store(0, std::memory_order_relaxed);
    state_.store(++epoch_ << 32 | uint64_t(n) << 16, std::memory_order_release);
    while (claim()) {
    }
    for (int64_t spins = 0; done_.load(std::memory_order_acquire) < n; ++spins) pause(spins);
  }

  // Leader: the block is done; helpers return.
  void finish() { state_.store(kFinished, std::memory_order_release); }

  // Helpers: take chunks until the leader finishes.
  void help() {
    for (int64_t spins = 0; state_.load(std::memory_order_acquire) != kFinished; ++spins)
      if (claim()) spins = 0; else pause(spins);
  }

 private:
  // state_: epoch (32 bits) | chunks in the stage (16) | next chunk to take (16), one word so
  // that a chunk is claimed for the stage whose function it then runs.
  static constexpr uint64_t kFinished = ~uint64_t(0);

  // Take and run the next chunk of the current stage; false if there is none.
  bool claim() {
    uint64_t s = state_.load(std::memory_order_acquire);
    while (s != kFinished && (s & 0xffff) < (s >> 16 & 0xffff)) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
        call_(fn_, int64_t(s & 0xffff));
        done_.fetch_add(1, std::memory_order_release);
        return true;
      }
    }
    return false;
  }

  // Wait a little; after a long wait (the other thread is off its core: a busy machine),
  // give the core away on each turn.
  static void pause(int64_t spins) {
    if (spins > (1 << 12)) {
      std::this_thread::yield();
      return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  const int64_t members_;
  uint64_t epoch_ = 0;                     // leader only
  const void* fn_ = nullptr;               // the stage: call_(fn_, chunk)
  void (*call_)(const void*, int64_t) = nullptr;
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> done_{0};
};

}  // namespace pixelcnn_native
