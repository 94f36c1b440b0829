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

}  // namespace

void count_saved_run(bool trained) { (trained ? trained_runs : resumed_runs).fetch_add(1); }

long found_finished_runs() { return resumed_runs.load(); }

void stop_cleanly_on_interrupt(const std::string& out_dir) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // Blocked everywhere, so the signal waits for sigwait below: the line is written by an ordinary
  // thread, not inside a signal handler.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals, out_dir] {
    int number = 0;
    if (sigwait(&signals, &number) != 0) return;
    const auto line = fmt::format(
        "\nngdbench: stopped by {}: {} run(s) trained and saved in {} by this sweep ({} found finished); run the "
        "same command again to resume (finished runs are kept)\n",
        number == SIGINT ? "SIGINT" : "SIGTERM", trained_runs.load(), out_dir, resumed_runs.load());
    std::fflush(stdout);  // the progress lines so far (stdio locks its buffers; this thread may flush)
    [[maybe_unused]] const auto written = ::write(STDERR_FILENO, line.data(), line.size());
    std::_Exit(128 + number);
  }).detach();
}

}  // namespace ngd
