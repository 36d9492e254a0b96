#!/usr/bin/env bash
# tests/fuzz.sh: builds the fuzz targets (fuzz/) with libFuzzer's coverage instrumentation on the stable toolchain, replays each target's seed corpus and saved crashes, then fuzzes each for SECONDS (default 60); fails on any crash.
#
#   bash tests/fuzz.sh [SECONDS] [TARGET...]
#
# FUZZ_PROFILE=deep (what `make fuzz` uses) builds fully optimised: slower
# to build, several times faster to run; the default, `release`, builds in
# under a minute of CPU for `make check`.
#
# The flags are the ones cargo-fuzz passes with `-s none` (no sanitizer:
# Rust code needs none for memory safety, and the build stays on stable
# Rust with no nightly-only flag); `cargo fuzz run TARGET` works as well
# for a developer who has cargo-fuzz. New inputs go to a scratch
# directory, so the committed corpus changes only by hand; a crash is
# saved as fuzz/artifacts/TARGET-crash-*, to be copied into
# fuzz/regressions/TARGET/ (replayed from then on) with a unit test for
# the fix.
set -euo pipefail
seconds=${1:-60}
shift || true
cd "$(dirname "$0")/../fuzz"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(parser sasl mbox maildir users config der proxy)
fi
host=$(rustc -vV | sed -n 's/^host: //p')
profile=${FUZZ_PROFILE:-release}
flags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg fuzzing
    -Cdebug-assertions
    -Coverflow-checks
)
# --target: the instrumentation must not reach build scripts and proc macros.
RUSTFLAGS="${flags[*]}" cargo build --profile "$profile" --locked --target "$host" --bins
mkdir -p artifacts
for t in "${targets[@]}"; do
    bin=target/$host/$profile/$t
    mkdir -p "regressions/$t"
    # Every seed and every saved crash, once.
    "$bin" -runs=0 "corpus/$t" "regressions/$t" 2>"artifacts/$t.log" || { cat "artifacts/$t.log" >&2; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # FUZZ_RUNS (make check): that many inputs from a fixed seed, the same on every machine, so a check
    # never turns red by chance; otherwise (make fuzz) random, for the given time.
    if [ -n "${FUZZ_RUNS:-}" ]; then
        budget=(-runs="$FUZZ_RUNS" -seed=1)
    else
        budget=(-max_total_time="$seconds")
    fi
    if ! "$bin" "${budget[@]}" -timeout=10 -artifact_prefix="artifacts/$t-" "$work" "corpus/$t" \
        2>"artifacts/$t.log"; then
        tail -40 "artifacts/$t.log" >&2
        echo "fuzz: $t found a crash (fuzz/artifacts/$t-*)" >&2
        exit 1
    fi
    echo "fuzz: $t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "artifacts/$t.log") clean"
    rm -rf "$work"
done
