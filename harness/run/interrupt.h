#pragma once

#include <string>

namespace ngd {

// Ctrl-C and `kill` during a sweep: SIGINT and SIGTERM end the process with one line on stderr
// saying how many runs this sweep has saved and that rerunning the same command resumes (finished
// runs are kept, the interrupted one is trained again), and exit status 128 + the signal (130,
// 143). The run in progress is abandoned as a kill would abandon it: result files are written
// atomically, and a temporary it leaves is removed by the next sweep (remove_stale_temporaries).
//
// With checkpoints on (checkpoint_on_signal), SIGTERM and SIGUSR1 (what Slurm sends before a time
// limit or a preemption) instead ask the run in progress to finish its step, write a checkpoint and
// stop: the process then exits with kExitCheckpointed (exit_checkpointed). Repeats of them wait for
// that checkpoint; SIGINT ends the process at once as above.

// EX_TEMPFAIL: stopped after saving a checkpoint; running the same command again resumes the run.
constexpr int kExitCheckpointed = 75;

// Blocks SIGINT, SIGTERM and SIGUSR1 in this thread and every thread started after it, and starts the
// thread that waits for them. Call first thing in main. `out_dir` names the results folder in the line.
void stop_cleanly_on_interrupt(const std::string& out_dir);

// Whether SIGTERM and SIGUSR1 ask for a checkpoint (true) or end the process (false, the default).
void checkpoint_on_signal(bool on);

// Whether a SIGTERM or SIGUSR1 has asked for a checkpoint and a stop.
bool checkpoint_requested();

// Ends the process after `what` (a checkpoint written, or nothing left to save): one line on stderr
// saying so and how to resume, stdout flushed, exit status kExitCheckpointed.
[[noreturn]] void exit_checkpointed(const std::string& what);

// Counts a run whose result the sweep has saved (trained now) or found finished (resumed), for the line.
void count_saved_run(bool trained);

// How many runs this process has found finished so far (count_saved_run(false)): the console summary's
// "found finished".
long found_finished_runs();

}  // namespace ngd
