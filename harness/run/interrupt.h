#pragma once

#include <string>

namespace ngd {

// Ctrl-C and `kill` during a sweep: SIGINT and SIGTERM end the process with one line on stderr
// saying how many runs this sweep has saved and that rerunning the same command resumes (finished
// runs are kept, the interrupted one is trained again), and exit status 128 + the signal (130,
// 143). The run in progress is abandoned as a kill would abandon it: result files are written
// atomically, and a temporary it leaves is removed by the next sweep (remove_stale_temporaries).

// Blocks both signals in this thread and every thread started after it, and starts the thread that
// waits for them. Call first thing in main. `out_dir` names the results folder in the line.
void stop_cleanly_on_interrupt(const std::string& out_dir);

// Counts a run whose result the sweep has saved (trained now) or found finished (resumed), for the line.
void count_saved_run(bool trained);

// How many runs this process has found finished so far (count_saved_run(false)): the console summary's
// "found finished".
long found_finished_runs();

}  // namespace ngd
