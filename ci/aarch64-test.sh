#!/usr/bin/env bash
# The quant crate's tests (every kernel against its scalar reference) built
# for aarch64 and run under qemu user-mode emulation: the NEON kernels'
# check on an x86 machine. Not part of .ci/run (it needs root for apt and
# a rustup download); run it by hand after touching crates/quant/src/simd/arm.
# Timings under emulation mean nothing; only correctness is checked.
set -euo pipefail
cd "$(dirname "$0")/.."
T=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$T" || rustup target add "$T"
if ! command -v qemu-aarch64-static >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  apt-get install -y qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/aarch64}
cargo clippy --workspace --all-targets --release --target "$T" -- -D warnings
cargo test -p shohin-quant --release --target "$T"
