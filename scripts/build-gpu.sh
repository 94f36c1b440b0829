#!/usr/bin/env bash
# Builds ngdbench on a GPU machine against the CUDA LibTorch of its PyTorch. Such a machine has no
# package registry, so the small dependencies travel with the tree:
#
#   scripts/build-gpu.sh pack           here, where scripts/install-deps.sh's packages are installed:
#                                       stages headers, GoogleTest's sources and SentencePiece into
#                                       third_party/carried/ (git-ignored; carry it to the GPU machine)
#   scripts/build-gpu.sh build [DIR]    on the GPU machine: configures against python3's torch with the
#                                       carried dependencies and builds into DIR (default build-gpu)
#
# CMAKE_ARGS adds CMake arguments to `build`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Where `pack` stages the dependencies and `build` reads them.
readonly kCarried=third_party/carried
# Debian's multiarch library folder (pack runs on Debian x86-64, like the GPU machines).
readonly kLibDir=/usr/lib/x86_64-linux-gnu

pack() {
  rm -rf "$kCarried"
  mkdir -p "$kCarried/include" "$kCarried/lib"
  # Header-only: nlohmann/json, CLI11, fmt (built header-only there), zlib's headers (its library is
  # on every machine, the headers are not).
  cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/fmt "$kCarried/include/"
  cp /usr/include/zlib.h /usr/include/zconf.h "$kCarried/include/"
  # GoogleTest builds from its sources (Debian's googletest package).
  cp -r /usr/src/googletest "$kCarried/googletest"
  # SentencePiece (the translation workload): headers and shared libraries, which need only libc and
  # libstdc++; the links keep the sonames the binaries ask for.
  if [ -e /usr/include/sentencepiece_processor.h ]; then
    cp /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h "$kCarried/include/"
    cp -P "$kLibDir"/libsentencepiece*.so* "$kCarried/lib/"
  fi
  echo "build-gpu: staged $(du -sh "$kCarried" | cut -f1) in $kCarried/; carry it (and a data root) to the GPU machine"
}

build() {
  local dir=${1:-build-gpu}
  if [ ! -d "$kCarried/include/nlohmann" ]; then
    echo "build-gpu: $kCarried/ is missing: run 'scripts/build-gpu.sh pack' where the packages are, and carry it" >&2
    exit 1
  fi
  local torch_dir standard
  torch_dir="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch"
  # LibTorch 2.12 and later need C++20 (its headers refuse older standards).
  standard=$(python3 -c 'import torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); print(20 if v >= (2, 12) else 17)')
  python3 -c 'import torch; print("build-gpu: torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "GPUs", torch.cuda.device_count())'
  local zlib_args=()
  if [ ! -e "$kLibDir/libz.so" ] && [ ! -e /usr/lib64/libz.so ]; then  # no development link: name the runtime library
    zlib_args=(-DZLIB_LIBRARY="$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')"
               -DZLIB_INCLUDE_DIR="$PWD/$kCarried/include")
  fi
  # shellcheck disable=SC2086  # CMAKE_ARGS is a list of words
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir" -DCMAKE_CXX_STANDARD="$standard" \
    -DNGDBENCH_CARRIED="$PWD/$kCarried" -DNGDBENCH_BENCHMARKS=OFF "${zlib_args[@]}" ${CMAKE_ARGS:-}
  cmake --build "$dir" -j "$(nproc)"
  echo "build-gpu: built $dir/ngdbench; run e.g. $dir/ngdbench run SPEC --device cuda --data-root DATA"
}

case "${1:-}" in
  pack) pack ;;
  build) build "${2:-}" ;;
  *) echo "usage: scripts/build-gpu.sh pack | build [DIR]" >&2; exit 2 ;;
esac
