#!/usr/bin/env bash
# Installs ngdbench's Debian packages when any is missing; a no-op (and no network) when all are present.
#
#   scripts/install-deps.sh             the packages the build, the tests and the report need
#   scripts/install-deps.sh --browser   also Debian's chromium, for the report's browser test (CTest label
#                                       `browser`; skipped without it)
set -euo pipefail

# OpenBLAS's OpenMP build: libtorch runs OpenMP too, so both share one thread pool that
# --threads sets (docs/performance.md has the measurements behind this choice).
readonly kPackages=(
  build-essential cmake ninja-build git
  libtorch-dev libopenblas0-openmp
  nlohmann-json3-dev libfmt-dev libcli11-dev libgtest-dev libbenchmark-dev zlib1g-dev
  libsentencepiece-dev
  dataset-fashion-mnist
  python3 python3-matplotlib
)

packages=("${kPackages[@]}")
for argument in "$@"; do
  case "$argument" in
    --browser) packages+=(chromium) ;;
    *) echo "install-deps: unknown option $argument (known: --browser)" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
