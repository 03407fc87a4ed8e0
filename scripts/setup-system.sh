#!/usr/bin/env bash
# Installs the Debian packages halo needs and are missing: a clean machine has Node.js alone.
#   setup-system.sh            what the test command needs (CI, README command 2): the C++ toolchain for the
#                              native CPU backend, Chromium for the chat-page test, the aarch64 cross compiler
#                              and qemu-user for the NEON check, clang-format-19 for the format check,
#                              python3-torch and python3-numpy for the absmean check against PyTorch (and, with
#                              libopenblas0-pthread, the trained tiny model's check against train.py's forward),
#                              clang-19, lld-19 and llvm-19 for @halo/kernels-hip's AMD code objects, and the HIP
#                              runtime (libamdhip64-5) for its no-GPU check against the real runtime. Its NVIDIA code
#                              objects need nvcc (the CUDA toolkit), which Debian's main archive does not carry: when
#                              it is missing this says where to get it and fails.
#   setup-system.sh --runtime  what running halo from a clone needs (README command 1): the C++ toolchain only.
#                              Not root and missing: says what to install and exits 0 (the build then says the
#                              native backend was skipped and halo runs on the slow reference backend).
set -euo pipefail
mode=tests
[ "${1:-}" = "--runtime" ] && mode=runtime
need=()
manual="" # what apt-get cannot install here, with where to get it
# node-gyp builds @halo/kernels-cpu's addon with a C++17 compiler, make and python3.
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "$mode" = tests ]; then
  # Headless browser for the @halo/server chat page test (driven by playwright-core).
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # @halo/kernels-cpu cross-check: the aarch64 cross-compile of the NEON kernels and their run under qemu-user.
  # (libasan/libubsan for its sanitizer run come with Debian's g++; strip comes with binutils.)
  command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu)
  command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
  # The "format" step checks the C/C++ with clang-format 19 exactly (scripts/format.mjs; other majors format differently).
  command -v clang-format-19 >/dev/null 2>&1 || need+=(clang-format-19)
  # @halo/h1b-format's absmean check against PyTorch itself (Debian's python3-torch 1.13, CPU, with numpy).
  /usr/bin/python3 -c "import torch, numpy" >/dev/null 2>&1 || need+=(python3-torch python3-numpy)
  # OpenBLAS for that torch: @halo/cli's check of the trained tiny model against packages/model-tiny/train/train.py's
  # float32 forward. Without it Debian's torch runs on the reference BLAS, about 30x slower (minutes instead of seconds).
  grep -q 'libopenblas\.so\.0' <<<"$(PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null)" || need+=(libopenblas0-pthread)
  # @halo/kernels-hip's GPU code objects are built from source (scripts/build-kernels.mjs): clang 19 compiles the kernels
  # for each gfx target, lld 19 links the .hsaco, llvm 19's readelf reads their register and scratch counts (a spill fails).
  command -v clang++-19 >/dev/null 2>&1 || need+=(clang-19)
  command -v ld.lld-19 >/dev/null 2>&1 || need+=(lld-19)
  command -v llvm-readelf-19 >/dev/null 2>&1 || need+=(llvm-19)
  # Its device test opens the real HIP runtime on a machine without an AMD GPU (the "no device" answer); no GPU needed.
  # (the loader's cache read whole first: grep -q closing the pipe early would trip pipefail.)
  grep -q 'libamdhip64\.so' <<<"$(PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null)" || need+=(libamdhip64-5)
  # Its sm_80 / sm_90 cubins and compute_80 PTX: nvcc, looked for where build-kernels.mjs looks (PATH, then HALO_CUDA_BIN).
  if ! command -v nvcc >/dev/null 2>&1 && [ ! -x "${HALO_CUDA_BIN:-/usr/local/cuda/bin}/nvcc" ]; then
    manual="nvcc (the CUDA toolkit, 11.8 or later for sm_90: https://developer.nvidia.com/cuda-downloads; not in Debian main) is on neither PATH nor ${HALO_CUDA_BIN:-/usr/local/cuda/bin}. Install it, or set HALO_CUDA_BIN to the directory holding nvcc, and run this command again."
  fi
fi
[ -n "$manual" ] && echo "setup-system: missing: $manual" >&2
if [ ${#need[@]} -eq 0 ]; then
  [ -z "$manual" ] && exit 0
  exit 1
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: installing ${need[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  [ -z "$manual" ] && exit 0
  exit 1
fi
echo "setup-system: missing system packages: ${need[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${need[*]}) and run this command again." >&2
[ "$mode" = runtime ] && exit 0
exit 1
