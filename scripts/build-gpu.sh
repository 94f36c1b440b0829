#!/usr/bin/env bash
# Builds ngdbench on a GPU machine against the CUDA LibTorch of its PyTorch. Such a machine has no
# package registry, so the small dependencies travel with the tree:
#
#   scripts/build-gpu.sh pack [DIR]      here, where scripts/install-deps.sh's packages are installed:
#                                        stages headers, GoogleTest's sources and SentencePiece into DIR
#                                        (default third_party/carried/, git-ignored; carry it to the GPU machine)
#   scripts/build-gpu.sh configure [DIR] on the GPU machine: configures DIR (default build-gpu) against
#                                        python3's torch with the carried dependencies
#   scripts/build-gpu.sh build [DIR]     configure, then build everything into DIR
#
# How LibTorch is found (TORCH_FROM): `config` uses the CMake config inside the torch package
# (-DTorch_DIR); a CUDA build's config also wants a CUDA toolkit, cuDNN and NVTX headers that match, so
# `configure` hands it what it can find of those. `python` takes the headers and libraries straight from
# the package (-DNGDBENCH_TORCH_PYTHON, CMakeLists.txt): ngdbench has no CUDA code of its own and needs
# none of that. `auto` (default) tries `config` and falls back to `python` when it fails.
# CMAKE_ARGS adds CMake arguments; PYTHON names another python3; TORCH_CONFIG_TIMEOUT bounds the `config`
# attempt (seconds, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."

# Where `pack` stages the dependencies and `configure` reads them.
readonly kCarried=third_party/carried
# Debian's multiarch library folder (pack runs on Debian x86-64, like the GPU machines).
readonly kLibDir=/usr/lib/x86_64-linux-gnu
readonly kPython=${PYTHON:-python3}

pack() {
  local dest=${1:-$kCarried}
  rm -rf "$dest"
  mkdir -p "$dest/include" "$dest/lib"
  # Header-only: nlohmann/json, CLI11, fmt (built header-only there), zlib's headers (its library is
  # on every machine, the headers are not).
  cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/fmt "$dest/include/"
  cp /usr/include/zlib.h /usr/include/zconf.h "$dest/include/"
  # GoogleTest builds from its sources (Debian's googletest package).
  cp -r /usr/src/googletest "$dest/googletest"
  # SentencePiece (the translation workload): headers and shared libraries, which need only libc and
  # libstdc++; the links keep the sonames the binaries ask for.
  if [ -e /usr/include/sentencepiece_processor.h ]; then
    cp /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h "$dest/include/"
    cp -P "$kLibDir"/libsentencepiece*.so* "$dest/lib/"
  fi
  echo "build-gpu: staged $(du -sh "$dest" | cut -f1) in $dest/; carry it (and a data root) to the GPU machine"
}

# The first existing path among the arguments (globs allowed), or nothing.
first_existing() {
  local candidate
  for candidate in "$@"; do
    [ -e "$candidate" ] && { echo "$candidate"; return; }
  done
  return 0
}

# CMake arguments that help a CUDA LibTorch's config find what it looks for: nvcc, cuDNN (the pip
# package nvidia-cudnn-*), and the NVTX3 headers (CUDA 12.9+ has no libnvToolsExt to fall back to).
cuda_hints() {
  local nvcc cuda_root nvtx cudnn_dir cudnn_lib
  nvcc=$(command -v nvcc || first_existing /usr/local/cuda/bin/nvcc)
  if [ -n "$nvcc" ]; then
    cuda_root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    echo "-DCMAKE_CUDA_COMPILER=$nvcc" "-DCUDAToolkit_ROOT=$cuda_root" "-DCUDA_TOOLKIT_ROOT_DIR=$cuda_root"
  fi
  nvtx=$(first_existing "${cuda_root:-/usr/local/cuda}/include/nvtx3" /usr/local/cuda/include/nvtx3 \
         "$("$kPython" -c 'import nvidia.nvtx, os; print(os.path.join(nvidia.nvtx.__path__[0], "include"))' 2>/dev/null)/nvtx3")
  [ -n "$nvtx" ] && echo "-Dnvtx3_dir=$(dirname "$nvtx")"
  cudnn_dir=$("$kPython" -c 'import nvidia.cudnn; print(nvidia.cudnn.__path__[0])' 2>/dev/null || true)
  if [ -n "$cudnn_dir" ] && [ -e "$cudnn_dir/include/cudnn.h" ]; then
    cudnn_lib=$(first_existing "$cudnn_dir"/lib/libcudnn.so "$cudnn_dir"/lib/libcudnn.so.*)
    [ -n "$cudnn_lib" ] && echo "-DCUDNN_INCLUDE_PATH=$cudnn_dir/include" "-DCUDNN_LIBRARY_PATH=$cudnn_lib"
  fi
  return 0
}

configure() {
  local dir=${1:-build-gpu}
  if [ ! -d "$kCarried/include/nlohmann" ]; then
    echo "build-gpu: $kCarried/ is missing: run 'scripts/build-gpu.sh pack' where the packages are, and carry it" >&2
    exit 1
  fi
  local torch_dir standard generator=()
  torch_dir="$("$kPython" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch"
  # LibTorch 2.12 and later need C++20 (its headers refuse older standards).
  standard=$("$kPython" -c 'import torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); print(20 if v >= (2, 12) else 17)')
  "$kPython" -c 'import torch; print("build-gpu: torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "GPUs", torch.cuda.device_count(), "C++", '"$standard"')'
  command -v ninja > /dev/null && generator=(-G Ninja)
  local zlib_args=()
  if [ ! -e "$kLibDir/libz.so" ] && [ ! -e /usr/lib64/libz.so ]; then  # no development link: name the runtime library
    zlib_args=(-DZLIB_LIBRARY="$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')"
               -DZLIB_INCLUDE_DIR="$PWD/$kCarried/include")
  fi
  local common=("${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD="$standard"
                -DNGDBENCH_CARRIED="$PWD/$kCarried" -DNGDBENCH_BENCHMARKS=OFF "${zlib_args[@]}")
  local mode=${TORCH_FROM:-auto}
  if [ "$mode" = auto ] || [ "$mode" = config ]; then
    if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] && command -v nvidia-smi > /dev/null; then
      # The config otherwise runs a program on the GPU to find its architecture (ngdbench compiles no kernels).
      TORCH_CUDA_ARCH_LIST=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 || true)
      [ -n "$TORCH_CUDA_ARCH_LIST" ] && export TORCH_CUDA_ARCH_LIST
    fi
    # shellcheck disable=SC2046,SC2086  # cuda_hints and CMAKE_ARGS are lists of words
    # (bounded: a config that hangs, say on a GPU it probes, must leave time for the fallback)
    if timeout "${TORCH_CONFIG_TIMEOUT:-600}" cmake -S . -B "$dir" "${common[@]}" -DTorch_DIR="$torch_dir" \
         -DNGDBENCH_TORCH_PYTHON= $(cuda_hints) ${CMAKE_ARGS:-}; then
      if ! grep -qx "Torch_DIR:PATH=$torch_dir" "$dir/CMakeCache.txt"; then
        echo "build-gpu: warning: CMake found another LibTorch: $(grep '^Torch_DIR' "$dir/CMakeCache.txt")" >&2
      fi
      echo "build-gpu: configured $dir with LibTorch's CMake config ($torch_dir)"
      return 0
    fi
    [ "$mode" = config ] && return 1
    echo "build-gpu: LibTorch's CMake config failed (above); configuring without it (TORCH_FROM=python)" >&2
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" "${common[@]}" -DNGDBENCH_TORCH_PYTHON="$(command -v "$kPython")" ${CMAKE_ARGS:-}
  echo "build-gpu: configured $dir with the torch package's headers and libraries ($kPython)"
}

build() {
  local dir=${1:-build-gpu}
  configure "$dir"
  cmake --build "$dir" -j "$(nproc)"
  echo "build-gpu: built $dir/ngdbench; run e.g. $dir/ngdbench run SPEC --device cuda --data-root DATA"
}

case "${1:-}" in
  pack) pack "${2:-}" ;;
  configure) configure "${2:-}" ;;
  build) build "${2:-}" ;;
  *) echo "usage: scripts/build-gpu.sh pack [DIR] | configure [DIR] | build [DIR]" >&2; exit 2 ;;
esac
