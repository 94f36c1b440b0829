#!/usr/bin/env bash
# Compiles ngdbench's translation units against another LibTorch's headers without building anything
# (g++ -fsyntax-only, one at a time, niced): the check behind the LibTorch 2.x guards (docs/gpu.md).
#
#   scripts/check-torch-headers.sh fetch DIR
#       Debian 13's libtorch-dev (LibTorch 2.6) headers into DIR, through apt with a private state folder
#       (the machine's own package lists and sources are left as they are)
#   scripts/check-torch-headers.sh check INCLUDE [--std c++17|c++20] [FILE...]
#       every .cpp of harness/, datasets/, optimizers/, tests/ and benchmarks/ (or FILE...) against the
#       LibTorch headers under INCLUDE (DIR/usr/include after `fetch`); one line per file, the errors of
#       failing ones, exit status 1 if any failed. About 15 s a file on 2 busy cores after a one-minute
#       precompiled header.
set -euo pipefail
cd "$(dirname "$0")/.."

fetch() {
  local dest=$1 state
  state=$(mktemp -d)
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dest"
  echo "deb http://deb.debian.org/debian trixie main" > "$state/sources.list"
  local options=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
                 -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o Dir::State::status=/dev/null)
  apt-get "${options[@]}" update -q
  (cd "$state" && apt-get "${options[@]}" download libtorch-dev)
  dpkg -x "$state"/libtorch-dev_*.deb "$dest"
  rm -rf "$state"
  grep -h "define TORCH_VERSION_M" "$dest/usr/include/torch/csrc/api/include/torch/version.h"
  echo "check-torch-headers: headers in $dest/usr/include"
}

check() {
  local include=$1 standard=c++17
  shift
  if [ "${1:-}" = --std ]; then standard=$2; shift 2; fi
  local files=("$@")
  if [ ${#files[@]} -eq 0 ]; then
    mapfile -t files < <(find harness datasets optimizers tests benchmarks -name '*.cpp' -not -path '*/fuzz/*' \
                           -not -path '*/sentencepiece_shim/*' | sort)
  fi
  local pch
  pch=$(mktemp -d)
  trap 'rm -rf "$pch"' RETURN
  local flags=(-std="gnu${standard#c}" -D_GLIBCXX_USE_CXX11_ABI=1 -DNDEBUG -DNGDBENCH_SPM_SHIM='"shim.so"'
               -DNGDBENCH_SOURCE_DIR='"."' -DNGDBENCH_BINARY='"ngdbench"' -I.)
  # (/usr/include, Debian's own LibTorch, is searched already; naming it breaks the C library's #include_next)
  [ "$include" = /usr/include ] || flags+=(-isystem "$include")
  flags+=(-isystem "$include/torch/csrc/api/include")
  printf '#include <torch/torch.h>\n#include <nlohmann/json.hpp>\n#include <fmt/format.h>\n' > "$pch/pch.h"
  nice -n 19 g++ "${flags[@]}" -x c++-header "$pch/pch.h" -o "$pch/pch.h.gch"
  local failed=0 file output
  for file in "${files[@]}"; do
    if output=$(nice -n 19 g++ "${flags[@]}" -include "$pch/pch.h" -Winvalid-pch -Wall -Wextra -fsyntax-only "$file" 2>&1); then
      echo "ok $file"
    else
      echo "FAILED $file"
      echo "$output" | grep -E "error" | head -10 | sed 's/^/    /'
      failed=1
    fi
  done
  return "$failed"
}

case "${1:-}" in
  fetch) fetch "$2" ;;
  check) shift; check "$@" ;;
  *) echo "usage: scripts/check-torch-headers.sh fetch DIR | check INCLUDE [--std c++17|c++20] [FILE...]" >&2; exit 2 ;;
esac
