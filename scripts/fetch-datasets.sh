#!/usr/bin/env bash
# Downloads the official dataset archives into a data root, checks their checksums and unpacks them
# under the official folder names the harness looks for. Fashion-MNIST comes from Debian
# (dataset-fashion-mnist, installed by scripts/install-deps.sh). Nothing in the build or tests calls this.
#
#   scripts/fetch-datasets.sh [--root DIR] [cifar10] [cifar100] [multi30k]   (default: all three, into ./data)
set -euo pipefail

root=./data
datasets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    cifar10|cifar100|multi30k) datasets+=("$1"); shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "fetch-datasets: unknown argument '$1' (datasets: cifar10 cifar100 multi30k)" >&2; exit 2 ;;
  esac
done
[ ${#datasets[@]} -gt 0 ] || datasets=(cifar10 cifar100 multi30k)
mkdir -p "$root"

download() {  # URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 2 --connect-timeout 20 -o "$2.part" "$1"
  else
    wget -q --tries=2 --timeout=20 -O "$2.part" "$1"
  fi || {
    rm -f "$2.part"
    echo "fetch-datasets: could not download $1 (no network, or the server refused)." >&2
    echo "  Copy the file by hand to $2 and rerun: it is checked and unpacked the same way." >&2
    exit 1
  }
  mv "$2.part" "$2"
}

check() {  # FILE ALGORITHM EXPECTED
  local actual
  actual=$("${2}sum" "$1" | cut -d' ' -f1)
  if [ "$actual" != "$3" ]; then
    echo "fetch-datasets: $1: $2 is $actual, expected $3 (corrupt or changed download; delete it and rerun)" >&2
    exit 1
  fi
}

fetch_archive() {  # NAME URL FOLDER ALGORITHM SUM
  local archive="$root/$(basename "$2")"
  if [ -d "$root/$3" ]; then echo "$1: $root/$3 already present"; return; fi
  [ -f "$archive" ] || download "$2" "$archive"
  check "$archive" "$4" "$5"
  tar -xzf "$archive" -C "$root"
  echo "$1: unpacked into $root/$3"
}

for dataset in "${datasets[@]}"; do
  case "$dataset" in
    cifar10)
      # SHA-256 as recorded for the official archive; the CIFAR page itself publishes MD5 c32a1d4ab5d03f1284b67883e8d87530.
      fetch_archive cifar10 https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz cifar-10-batches-bin \
        sha256 c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd ;;
    cifar100)
      # The official page publishes only MD5 for this archive; no SHA-256 could be sourced.
      fetch_archive cifar100 https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz cifar-100-binary \
        md5 03b5dce01913d631647c71ecec9e9cb8 ;;
    multi30k)
      folder="$root/multi30k"
      mkdir -p "$folder"
      while read -r sum file; do
        [ -f "$folder/$file" ] || download "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/$file" "$folder/$file"
        check "$folder/$file" sha256 "$sum"
      done <<'SUMS'
d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f train.en.gz
726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6 train.de.gz
14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28 val.en.gz
f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a val.de.gz
611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9 test_2016_flickr.en.gz
9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8 test_2016_flickr.de.gz
SUMS
      echo "multi30k: $folder ready" ;;
  esac
done
