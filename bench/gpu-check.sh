#!/usr/bin/env bash
# bench/gpu-check.sh: the one prepared check of @halo/kernels-hip on a real NVIDIA GPU (issue 17, item 5). Run from the
# repository root on the GPU machine; it needs nvcc, g++ and the NVIDIA driver, and nothing else — no Node.js, no
# network, nothing outside the repository but $OUT:
#   1. prints nvidia-smi and the tool versions
#   2. builds the code objects for the GPU's compute capability with nvcc, with the flags of
#      packages/kernels-hip/scripts/nvcc-flags.txt (the list scripts/build-kernels.mjs uses too): kernels/halo_kernels.cpp
#      exactly as shipped, and test/native/bandwidth.kern.h (bench-only kernels) in a directory of its own
#   3. builds test/native/gpu_check.cpp with g++ -O2 (parallel compiles)
#   4. runs it: kernel conformance vs the scalar twins, a tiny model vs the CPU emulator, read / copy bandwidth, GEMV on
#      the 2B-4T shapes, end-to-end decode and prefill on the 2B-4T shape (see gpu_check.cpp for what each measures)
#   5. runs the conformance and model checks again with tiny shapes under compute-sanitizer's memcheck
# Everything is printed and written to $OUT/gpu-check.log; JSON lines (every record naming the GPU and its measured read
# bandwidth) to $OUT/gpu-check.jsonl. Exit status: gpu_check's (0 all checks passed, 1 a conformance or model check
# failed — the timings are still measured and printed, 2 the device did not open), or the build's failure.
#
#   bench/gpu-check.sh [gpu_check options, e.g. --only gemv,e2e]
#   HALO_GPU_CHECK_DEVICE=emulator bench/gpu-check.sh --tiny     the same on the CPU emulator (no nvcc, no GPU)
#
# Environment: OUT (default /tmp/gpu-check-out), HALO_GPU_CHECK_DEVICE (cuda | emulator | hip; default cuda),
# HALO_GPU_CHECK_ARCH (sm_XX; default from nvidia-smi's compute capability), HALO_GPU_CHECK_JOBS (parallel compiles;
# default nproc), HALO_GPU_CHECK_TIMEOUT (seconds for gpu_check itself; default 420), HALO_GPU_CHECK_MEMCHECK (0 skips
# the compute-sanitizer memcheck pass over the tiny conformance and model checks that follows; its own timeout
# HALO_GPU_CHECK_MEMCHECK_TIMEOUT, default 150), HALO_GPU_CHECK_BUILD (build
# directory; default packages/kernels-hip/build/gpu-check), CXX (default g++). For hip: HALO_GPU_CHECK_CODE_DIR and
# HALO_GPU_CHECK_BENCH_CODE_DIR name directories of already built .hsaco files (this script builds CUDA code only).
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$ROOT/packages/kernels-hip"
DEVICE="${HALO_GPU_CHECK_DEVICE:-cuda}"
OUT="${OUT:-/tmp/gpu-check-out}"
BUILD="${HALO_GPU_CHECK_BUILD:-$PKG/build/gpu-check}"
JOBS="${HALO_GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 2)}"
TIMEOUT="${HALO_GPU_CHECK_TIMEOUT:-420}"
CXX="${CXX:-g++}"
LOG="$OUT/gpu-check.log"
JSONL="$OUT/gpu-check.jsonl"

# The sources gpu_check links (package-relative): the device layer, the model, the packer, the twins, the kernels and
# the emulator (section 2 compares the GPU with it; --device emulator runs everything on it).
SOURCES=(
  test/native/gpu_check.cpp
  native/device.cpp
  native/device_cuda.cpp
  native/device_hip.cpp
  native/device_emu.cpp
  native/gpu_model.cpp
  native/pack_g2.cpp
  native/twins.cpp
  kernels/halo_kernels.cpp
  kernels/emu/emu.cpp
)
# As scripts/native-test.mjs builds the C++ tests: contraction off, so the emulator matches the twins bit for bit.
CXXFLAGS=(-std=c++17 -O2 -ffp-contract=off -pthread -Wall -Wextra -I"$PKG/kernels" -I"$PKG/native")

say() { printf 'gpu-check: %s\n' "$*"; }

find_nvcc() {
  local candidate
  for candidate in nvcc "${HALO_CUDA_BIN:-/usr/local/cuda/bin}/nvcc" /usr/local/cuda/bin/nvcc; do
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Builds halo_kernels.<arch>.cubin from `source` into `dir`; ptxas's resource report goes to the log, and a spill or a
# stack frame is named (build-kernels.mjs fails the package build on it; here the measurement still goes on).
build_cubin() {
  local nvcc="$1" arch="$2" source="$3" dir="$4" report
  mkdir -p "$dir"
  rm -f "$dir/halo_kernels.$arch.cubin"
  report="$dir/ptxas.txt"
  "$nvcc" -cubin "-arch=$arch" --resource-usage "${NVCC_FLAGS[@]}" -I "$PKG/kernels" -o "$dir/halo_kernels.$arch.cubin" "$source" >"$report" 2>&1 || {
    cat "$report"
    return 1
  }
  if grep -Eq '[1-9][0-9]* bytes (stack frame|spill stores|spill loads)' "$report"; then
    say "WARNING: ptxas reports stack or spills in $(basename "$source") for $arch:"
    grep -E -B1 '[1-9][0-9]* bytes (stack frame|spill stores|spill loads)' "$report" || true
  fi
  grep -E 'Function properties for|Used [0-9]+ registers' "$report" | paste - - | sed -E 's/ptxas info *: //g; s/Function properties for //' || true
}

# Compiles one package source to an object unless the object is newer than it and than every header of the package.
compile() {
  local src="$1" obj
  obj="$BUILD/obj/$(printf '%s' "$src" | tr '/.' '__').o"
  if [ -f "$obj" ] && [ "$obj" -nt "$PKG/$src" ] && [ -z "$(find "$PKG/kernels" "$PKG/native" "$PKG/test/native" -name '*.h' -newer "$obj" -print -quit)" ]; then
    return 0
  fi
  if ! "$CXX" "${CXXFLAGS[@]}" -c "$PKG/$src" -o "$obj.tmp" >"$obj.log" 2>&1; then
    cat "$obj.log"
    touch "$BUILD/obj/failed"
    return 1
  fi
  cat "$obj.log"
  mv "$obj.tmp" "$obj"
}

main() {
  local started rc=0 arch="" code_dir="" bench_dir="" nvcc src running
  started=$(date +%s)
  say "$(date -u '+%Y-%m-%d %H:%M:%S UTC'), device $DEVICE, $(uname -srm), $(nproc 2>/dev/null || echo '?') cores, build $BUILD, output $OUT"
  say "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'unknown (no .git here)')"
  "$CXX" --version 2>&1 | sed -n 1p

  if [ "$DEVICE" = cuda ]; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      nvidia-smi || true
      nvidia-smi --query-gpu=name,compute_cap,memory.total,clocks.max.sm,clocks.max.memory,driver_version --format=csv || true
    else
      say "nvidia-smi not found: is this the GPU machine?"
    fi
    arch="${HALO_GPU_CHECK_ARCH:-}"
    if [ -z "$arch" ]; then
      arch="sm_$( (nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null || true) | sed -n 1p | tr -d ' .')"
      [ "$arch" = sm_ ] && arch=sm_90 && say "compute capability unknown: building for sm_90 (set HALO_GPU_CHECK_ARCH)"
    fi
    # The device layer dlopens libcuda.so.1; where the loader cannot find it, point it at the driver's copy.
    if [ -z "${HALO_CUDA_DRIVER_LIBRARY:-}" ] && ! ldconfig -p 2>/dev/null | grep 'libcuda\.so\.1' >/dev/null; then
      local lib dir found=""
      for dir in ${LD_LIBRARY_PATH//:/ }; do [ -e "$dir/libcuda.so.1" ] && found=1; done
      if [ -z "$found" ]; then
        for lib in /usr/local/nvidia/lib64/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1; do
          if [ -e "$lib" ]; then
            export HALO_CUDA_DRIVER_LIBRARY="$lib"
            say "libcuda.so.1 is not on the loader's path: HALO_CUDA_DRIVER_LIBRARY=$lib"
            break
          fi
        done
      fi
    fi
    nvcc=$(find_nvcc) || {
      say "nvcc not found (PATH, HALO_CUDA_BIN, /usr/local/cuda/bin): install the CUDA toolkit or put its bin/ on PATH"
      return 1
    }
    "$nvcc" --version | tail -2
    read -r -a NVCC_FLAGS <<<"$(sed 's/#.*//' "$PKG/scripts/nvcc-flags.txt" | tr '\n' ' ')"
    code_dir="$BUILD/code"
    bench_dir="$BUILD/code/bench"
    say "nvcc ${NVCC_FLAGS[*]} for $arch: kernels/halo_kernels.cpp and test/native/bandwidth.kern.h"
    build_cubin "$nvcc" "$arch" "$PKG/kernels/halo_kernels.cpp" "$code_dir" &
    local kernels_pid=$!
    build_cubin "$nvcc" "$arch" "$PKG/test/native/bandwidth.kern.h" "$bench_dir" >"$BUILD/bench-cubin.txt" 2>&1 || {
      cat "$BUILD/bench-cubin.txt"
      return 1
    }
    wait "$kernels_pid" || return 1
    cat "$BUILD/bench-cubin.txt"
  elif [ "$DEVICE" = hip ]; then
    code_dir="${HALO_GPU_CHECK_CODE_DIR:?HALO_GPU_CHECK_CODE_DIR must name the directory of halo_kernels.<gfx>.hsaco}"
    bench_dir="${HALO_GPU_CHECK_BENCH_CODE_DIR:?HALO_GPU_CHECK_BENCH_CODE_DIR must name the directory of the bench hsaco}"
  elif [ "$DEVICE" != emulator ]; then
    say "HALO_GPU_CHECK_DEVICE must be cuda, hip or emulator, not '$DEVICE'"
    return 2
  fi

  say "building gpu_check with $CXX -O2 ($JOBS parallel compiles)"
  mkdir -p "$BUILD/obj"
  rm -f "$BUILD/obj/failed"
  local t0
  t0=$(date +%s)
  for src in "${SOURCES[@]}"; do
    compile "$src" &
    running=$(jobs -rp | wc -l)
    while [ "$running" -ge "$JOBS" ]; do
      wait -n || true
      running=$(jobs -rp | wc -l)
    done
  done
  wait || true
  if [ -e "$BUILD/obj/failed" ]; then
    say "the build of gpu_check failed (above)"
    return 1
  fi
  local objects=()
  for src in "${SOURCES[@]}"; do objects+=("$BUILD/obj/$(printf '%s' "$src" | tr '/.' '__').o"); done
  "$CXX" "${objects[@]}" -pthread -ldl -o "$BUILD/gpu_check" || {
    say "linking gpu_check failed"
    return 1
  }
  say "built in $(($(date +%s) - t0)) s"

  local args=(--device "$DEVICE" --out "$JSONL")
  [ -n "$code_dir" ] && args+=(--code-dir "$code_dir" --bench-code-dir "$bench_dir")
  # Section 2's emulated reference model: every core of the machine.
  args+=(--emu-threads "$(nproc 2>/dev/null || echo 2)")
  say "running: gpu_check ${args[*]} $*"
  timeout -k 10 "$TIMEOUT" "$BUILD/gpu_check" "${args[@]}" "$@" || rc=$?
  case "$rc" in
    0) say "all conformance and model checks passed" ;;
    1) say "FAILED: a conformance or model check failed (see FAIL lines above); the timings above still stand" ;;
    124 | 137) say "gpu_check ran out of its ${TIMEOUT} s (HALO_GPU_CHECK_TIMEOUT); the output above is what it finished" ;;
    *) say "gpu_check exited with status $rc" ;;
  esac

  # The kernels and the model's buffers under NVIDIA's memcheck (out-of-bounds and misaligned accesses), tiny shapes, after
  # the timings so a slow sanitizer cannot cost them. An error it finds fails the script; a sanitizer that cannot run
  # here (not installed, device not supported) is only reported.
  local sanitizer="" mc=0
  if [ "$DEVICE" = cuda ] && [ "${HALO_GPU_CHECK_MEMCHECK:-1}" != 0 ] && [ "$rc" != 2 ]; then
    for sanitizer in compute-sanitizer "$(dirname "$nvcc")/compute-sanitizer" /usr/local/cuda/compute-sanitizer/compute-sanitizer ""; do
      [ -n "$sanitizer" ] && command -v "$sanitizer" >/dev/null 2>&1 && break
    done
    if [ -z "$sanitizer" ]; then
      say "compute-sanitizer not found: memcheck skipped"
    else
      say "memcheck: compute-sanitizer --tool memcheck gpu_check --only conformance,model --tiny"
      timeout -k 10 "${HALO_GPU_CHECK_MEMCHECK_TIMEOUT:-150}" "$sanitizer" --tool memcheck --error-exitcode 86 --print-limit 20 "$BUILD/gpu_check" \
        --device cuda --code-dir "$code_dir" --bench-code-dir "$bench_dir" --out "$OUT/gpu-check-memcheck.jsonl" --only conformance,model --tiny \
        --emu-threads "$(nproc 2>/dev/null || echo 2)" || mc=$?
      case "$mc" in
        0) say "memcheck: no errors" ;;
        86 | 1)
          say "FAILED: memcheck found device memory errors or a check failed under it (above)"
          [ "$rc" = 0 ] && rc=1
          ;;
        124 | 137) say "memcheck ran out of its ${HALO_GPU_CHECK_MEMCHECK_TIMEOUT:-150} s: not a verdict" ;;
        *) say "memcheck could not run (status $mc): not a verdict" ;;
      esac
    fi
  fi
  say "done in $(($(date +%s) - started)) s; log $LOG, JSON lines $JSONL"
  return "$rc"
}

mkdir -p "$OUT" "$BUILD"
: >"$JSONL"
# errexit holds inside main (a pipeline outside `||` / `&&`); pipefail makes main's status the script's.
main "$@" 2>&1 | tee "$LOG"
