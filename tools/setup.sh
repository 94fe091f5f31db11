#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine for building and testing qreduce without a GPU.
#   - from the distribution: cmake, clang-22 (HIP device code for gfx942/gfx950), clang-tools-22
#     (clang-offload-bundler: HIP object files holding several targets), doctest
#   - HIP 6.4 headers and AMD device libraries from the distribution's unstable suite, downloaded and
#     unpacked into .toolchain/rocm (never installed system-wide: they would not fit Debian 12's
#     libraries). The archive address is read from this machine's own apt sources.
# Idempotent: a second run checks what is there and returns in about a second.
#   tools/setup.sh            everything the tests need
#   tools/setup.sh --host     only the host compiler and Python (what tools/run.sh needs without a GPU)
set -euo pipefail
host_only=0
[ "${1:-}" = "--host" ] && host_only=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tc="$root/.toolchain"
rocm="$tc/rocm"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

want=(cmake clang-22 clang-tools-22 lld-22 clang-format doctest-dev g++ python3 python3-numpy python3-matplotlib)
[ $host_only -eq 1 ] && want=(g++ python3)
need_pkgs=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no apt-get here; install ${need_pkgs[*]} by hand" >&2
    exit 1
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
if [ $host_only -eq 1 ]; then
  echo "setup: ok (host compiler and Python)"
  exit 0
fi

hip_pkgs=(libamdhip64-dev libamdhip64-6 libhsa-runtime-dev rocm-device-libs-21 librocprim-dev hipcc)
stamp="$rocm/.complete"
if [ ! -f "$stamp" ]; then
  # The Debian archive this machine already uses (deb822 .sources or one-line .list entries).
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  [ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                        | awk '{for(i=2;i<=NF;i++) if($i ~ /^[a-z]+:\/\/.*\/debian\/?$/){print $i; exit}}' | head -n1 || true)
  [ -n "$uri" ] || { echo "setup: no Debian archive found in this machine's apt sources" >&2; exit 1; }
  work="$tc/apt"
  mkdir -p "$work/lists/partial" "$work/archives/partial" "$rocm"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri unstable main" > "$work/unstable.list"
  opts=(-o "Dir::Etc::SourceList=$work/unstable.list" -o "Dir::Etc::SourceParts=-"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
        -o "APT::Architecture=amd64" -o "Debug::NoLocking=1")
  echo "setup: fetching HIP 6.4 headers and device libraries from the unstable suite into .toolchain/rocm"
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download "${hip_pkgs[@]}" >/dev/null)
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$rocm"; done
  rm -rf "$work"
  touch "$stamp"
fi
# CMake's HIP language (cmake/hip-clang.cmake) looks for the runtime's package under <root>/lib/cmake;
# Debian keeps it under lib/<triplet>/cmake: a file there that forwards to it.
shim="$rocm/usr/lib/cmake/hip-lang"
if [ -f "$rocm/usr/lib/x86_64-linux-gnu/cmake/hip-lang/hip-lang-config.cmake" ] && [ ! -f "$shim/hip-lang-config.cmake" ]; then
  mkdir -p "$shim"
  echo 'include(${CMAKE_CURRENT_LIST_DIR}/../../x86_64-linux-gnu/cmake/hip-lang/hip-lang-config.cmake)' > "$shim/hip-lang-config.cmake"
  cp "$rocm/usr/lib/x86_64-linux-gnu/cmake/hip-lang/hip-lang-config-version.cmake" "$shim/"
fi
bitcode=$(ls -d "$rocm"/usr/lib/llvm-*/lib/clang/*/amdgcn/bitcode 2>/dev/null | head -n1)
[ -n "$bitcode" ] || { echo "setup: AMD device libraries missing under $rocm" >&2; exit 1; }
echo "setup: ok (clang-22, cmake, doctest, HIP headers in .toolchain/rocm)"
