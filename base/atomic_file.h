#pragma once

#include <cstddef>
#include <string>

namespace ngd {

// Writes `content` so that `path` holds either its old content or all of the new one, never a part:
// a new temporary file in the same folder (PATH.tmp.HOST.PID.RANDOM, created exclusively and never
// through a symbolic link, so workers and users sharing the folder cannot collide or redirect it),
// flushed to disk, then renamed over `path` (a link there is replaced, not followed). Creates the
// folders on the way.
// Throws std::runtime_error "PATH: what (system reason); ..." when the folder cannot be created or the
// write fails (disk full, file size limit, read-only), leaving no temporary behind.
void write_file_atomically(const std::string& path, const std::string& content);

// Creates `folder` and checks that a result-sized file (1 MiB) can be written in it (throwing
// write_file_atomically's error if not: read-only, full, over quota), so a sweep can stop before
// training a run whose result it could not save.
void check_writable_folder(const std::string& folder);

// Removes the temporaries write_file_atomically left in `folder` when its process was killed
// between write and rename: those of this host whose process is gone. Returns how many.
size_t remove_stale_temporaries(const std::string& folder);

}  // namespace ngd
