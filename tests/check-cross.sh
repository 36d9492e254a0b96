#!/usr/bin/env bash
# make check-cross: the static firmware builds tested under qemu-user (no binfmt_misc, no Docker), with the time each step took.
#
# aarch64 and mipsel (64-bit and 32-bit little-endian): the whole Rust integration suite (daemon and inetd
# modes, TLS with STLS and implicit, SASL, UPDATE, ...) and Python's poplib and curl over TLS, all against
# the emulated binary. armv7 and big-endian mips: the TLS and SASL integration tests; mips also runs the
# unit tests under qemu-mips, the cheapest proof that nothing depends on byte order. The tests themselves
# are host binaries: only pop3d runs under emulation (POP3D_TEST_RUNNER, POP3D_TEST_BIN), so one build of
# the test drivers serves every target.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
step() { printf 'check-cross: [%4ds] %s\n' $((SECONDS - start)) "$*"; }

step "installing the cross tools"
bash tests/install-cross.sh

step "building the host test drivers"
cargo test --test '*' --no-run -q

# suite TRIPLE QEMU CARGO-TEST-ARGS...: integration tests against the emulated static build of TRIPLE.
suite() {
    local triple=$1 qemu=$2
    shift 2
    step "$triple: integration tests under $qemu"
    POP3D_TEST_RUNNER=$qemu POP3D_TEST_BIN=$PWD/target/$triple/release-small/pop3d cargo test -q "$@"
}

# clients TRIPLE QEMU: Python's poplib and curl over TLS (implicit and STLS) against the emulated daemon.
clients() {
    local triple=$1 qemu=$2
    step "$triple: poplib and curl over TLS under $qemu"
    POP3D_TEST_RUNNER=$qemu POP3D_BIN=$PWD/target/$triple/release-small/pop3d \
        python3 -m pytest -q tests/interop/test_tls_poplib.py tests/interop/test_tls_curl.py
}

# The four release builds in one cargo run (its jobs fill both cores while one target's link-time optimisation
# runs on one), then the unit tests' build for big-endian MIPS in the background, in a target directory of its
# own (no lock shared with the suites' cargo), while the suites run: they wait on emulated servers as much as
# they compute.
step "release builds: aarch64, mipsel, armv7, mips"
make --no-print-directory release \
    TARGETS="aarch64-unknown-linux-musl mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf mips-unknown-linux-musl"

# The unit tests built for big-endian MIPS and run by qemu-mips (cargo's runner). Tests unwind, so std is
# rebuilt with panic_unwind here. opt-level 1: the property tests run 2-8 times faster under emulation than
# unoptimised code, for less extra build time than that saves.
mips_units() {
    CARGO_TARGET_DIR=$PWD/target/mips-units CARGO_PROFILE_DEV_OPT_LEVEL=1 CARGO_PROFILE_TEST_OPT_LEVEL=1 \
        CARGO_TARGET_MIPS_UNKNOWN_LINUX_MUSL_RUNNER=qemu-mips RUSTC_BOOTSTRAP=1 \
        cargo-zigbuild test -q -Zbuild-std --target mips-unknown-linux-musl --lib "$@"
}
step "mips-unknown-linux-musl: building the unit tests (in the background)"
units_log=$(mktemp)
mips_units --no-run >"$units_log" 2>&1 &
units=$!
trap 'kill "$units" 2>/dev/null || true; rm -f "$units_log"' EXIT

for spec in aarch64-unknown-linux-musl:qemu-aarch64 mipsel-unknown-linux-musl:qemu-mipsel; do
    triple=${spec%%:*} qemu=${spec#*:}
    suite "$triple" "$qemu" --test '*'
    clients "$triple" "$qemu"
done

for spec in armv7-unknown-linux-musleabihf:qemu-arm mips-unknown-linux-musl:qemu-mips; do
    triple=${spec%%:*} qemu=${spec#*:}
    suite "$triple" "$qemu" --test tls --test sasl
done

step "mips-unknown-linux-musl: unit tests under qemu-mips"
if ! wait "$units"; then
    cat "$units_log" >&2
    exit 1
fi
mips_units

step "done"
