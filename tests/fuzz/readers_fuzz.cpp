// libFuzzer target: arbitrary bytes as an IDX file (gzip'd or plain), as a CIFAR-10/100 record file
// and as a Multi30K line file (and a pair of them). Every input must load or be rejected with
// std::runtime_error naming the file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "datasets/cifar.h"
#include "datasets/idx_reader.h"
#include "datasets/multi30k.h"

namespace {

std::string scratch_file() {
  static const std::string path = "/tmp/ngdbench-fuzz-" + std::to_string(::getpid());
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream file(scratch_file(), std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    (void)ngd::read_idx_file(scratch_file());
  } catch (const std::runtime_error&) {
  }
  for (const int64_t label_bytes : {1, 2}) {
    try {
      (void)ngd::read_cifar_records(scratch_file(), label_bytes, label_bytes - 1, label_bytes == 1 ? 10 : 100);
    } catch (const std::runtime_error&) {
    }
  }
  try {
    (void)ngd::read_parallel_text(scratch_file(), scratch_file());
  } catch (const std::runtime_error&) {
  }
  return 0;
}
