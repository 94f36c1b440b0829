#include "base/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>

namespace ngd {
namespace {

// Tries at creating a temporary with a fresh random name before giving up (a clash is a 2⁻³² event,
// or a planted file or link, which is never opened).
constexpr int kTemporaryNameAttempts = 8;
// Bytes written (and removed) by check_writable_folder: room for a result file, which takes a few
// KB to a few hundred KB; a disk with less free space stops the sweep before a run trains.
constexpr size_t kResultRoomProbeBytes = size_t{1} << 20;

std::string host_name() {
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  return host.data();
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& content) {
  // Every failure names `path` and the system's reason, removes the temporary file, and leaves an
  // existing file at `path` as it was.
  const auto fail = [&path](const char* what, int error) {
    return std::runtime_error(fmt::format("{}: {} ({}); the previous file, if any, is unchanged", path, what,
                                          std::strerror(error)));
  };
  const auto target = std::filesystem::path(path);
  if (target.has_parent_path()) {
    std::error_code error;
    std::filesystem::create_directories(target.parent_path(), error);
    if (error) {
      throw std::runtime_error(fmt::format("{}: cannot create the folder {} ({})", path, target.parent_path().string(),
                                           error.message()));
    }
  }
  // Host and process in the name say whose it is (remove_stale_temporaries); the random part makes it
  // unpredictable, and O_EXCL|O_NOFOLLOW create a new file or fail: a file or link planted there by
  // someone sharing the folder is never opened, let alone written through.
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  const auto prefix = fmt::format("{}.tmp.{}.{}.", path, host_name(), ::getpid());
  std::string temporary;
  int fd = -1;
  for (int attempt = 0; attempt < kTemporaryNameAttempts && fd < 0; ++attempt) {
    temporary = prefix + fmt::format("{:08x}", static_cast<uint32_t>(generator()));
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) throw fail("cannot create a file next to it", errno);
  // `error` is passed in, read before close and unlink can change errno.
  const auto abandon = [&](const char* what, int error) {
    ::unlink(temporary.c_str());
    return fail(what, error);
  };
  const auto close_and_abandon = [&](int error) {
    ::close(fd);
    return abandon("write failed", error);
  };
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t count = ::write(fd, content.data() + written, content.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) throw close_and_abandon(errno);
    written += static_cast<size_t>(count);
  }
  if (::fsync(fd) != 0) throw close_and_abandon(errno);
  if (::close(fd) != 0) throw abandon("write failed", errno);  // a delayed write error (network file systems)
  if (std::rename(temporary.c_str(), path.c_str()) != 0) throw abandon("cannot replace", errno);
}

void check_writable_folder(const std::string& folder) {
  const auto probe = std::filesystem::path(folder) / ".ngdbench-write-check";
  write_file_atomically(probe.string(), std::string(kResultRoomProbeBytes, ' '));
  std::filesystem::remove(probe);
}

size_t remove_stale_temporaries(const std::string& folder) {
  std::error_code error;
  std::filesystem::directory_iterator entries(folder, error);
  if (error) return 0;  // no folder yet: nothing left behind
  const auto marker = ".tmp." + host_name() + ".";
  size_t removed = 0;
  for (const auto& entry : entries) {
    // NAME.tmp.HOST.PID.RANDOM (write_file_atomically's names) of this host.
    const auto name = entry.path().filename().string();
    const auto at = name.rfind(marker);
    if (at == std::string::npos) continue;
    const auto rest = name.substr(at + marker.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot > 9 ||
        !std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(dot),
                     [](unsigned char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const auto pid = static_cast<pid_t>(std::stol(rest.substr(0, dot)));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still be at work
    if (std::filesystem::remove(entry.path(), error)) ++removed;
  }
  return removed;
}

}  // namespace ngd
