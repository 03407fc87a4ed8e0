#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when missing (CI machines start bare).
set -euo pipefail
need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# Headless browser for the @halo/server chat page test (driven by playwright-core); optional when not
# root (the test skips and says so without it).
if [ "$(id -u)" = "0" ] && ! command -v chromium >/dev/null 2>&1; then need+=(chromium); fi
# @halo/kernels-cpu test:ci steps: the aarch64 cross-compile of the NEON kernels and their run under qemu-user.
# (libasan/libubsan for its sanitizer run come with Debian's g++.)
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else
    echo "missing system packages: ${need[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi
