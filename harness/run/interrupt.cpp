#include "harness/run/interrupt.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace ngd {
namespace {

std::atomic<long> trained_runs{0};
std::atomic<long> resumed_runs{0};
std::atomic<bool> checkpoint_on_signal_{false};
std::atomic<bool> checkpoint_requested_{false};

const char* signal_name(int number) {
  switch (number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "SIGUSR1";
  }
}

// Writes `line` to stderr after flushing the progress lines so far (stdio locks its buffers; any
// thread may flush).
void say(const std::string& line) {
  std::fflush(stdout);
  [[maybe_unused]] const auto written = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

void count_saved_run(bool trained) { (trained ? trained_runs : resumed_runs).fetch_add(1); }

long found_finished_runs() { return resumed_runs.load(); }

void checkpoint_on_signal(bool on) { checkpoint_on_signal_.store(on); }

bool checkpoint_requested() { return checkpoint_requested_.load(); }

void exit_checkpointed(const std::string& what) {
  say(fmt::format("\nngdbench: stopped by a signal after {}: {} run(s) trained and saved by this sweep ({} found "
                  "finished); run the same command again to resume (exit status {})\n",
                  what, trained_runs.load(), resumed_runs.load(), kExitCheckpointed));
  std::exit(kExitCheckpointed);
}

void stop_cleanly_on_interrupt(const std::string& out_dir) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  // Blocked everywhere, so the signal waits for sigwait below: the line is written by an ordinary
  // thread, not inside a signal handler.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals, out_dir] {
    int number = 0;
    while (sigwait(&signals, &number) == 0) {
      if (number != SIGINT && checkpoint_on_signal_.load()) {
        // The training loop sees the request after its current step (RunCheckpoints::due_mid_epoch).
        // Repeats are expected (Slurm signals the batch shell, which passes it on, and the job's
        // processes): the checkpoint is under way; SIGINT or SIGKILL end the process sooner.
        if (!checkpoint_requested_.exchange(true)) {
          say(fmt::format("\nngdbench: {}: writing a checkpoint after the current step, then stopping\n",
                          signal_name(number)));
        }
        continue;
      }
      say(fmt::format(
          "\nngdbench: stopped by {}: {} run(s) trained and saved in {} by this sweep ({} found finished); run the "
          "same command again to resume (finished runs are kept)\n",
          signal_name(number), trained_runs.load(), out_dir, resumed_runs.load()));
      std::_Exit(128 + number);
    }
  }).detach();
}

}  // namespace ngd
