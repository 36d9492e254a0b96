#!/usr/bin/env bash
# Installs what the static firmware builds and their emulated tests need, without Docker (run as root; idempotent, quiet).
set -euo pipefail

# Debian: qemu-user runs the aarch64/arm/mips binaries (invoked by name, no binfmt_misc needed); file and
# binutils (readelf) check that every release binary is static.
PKGS="qemu-user file binutils"
# rustup: prebuilt static-musl std for x86_64 and aarch64; rust-src rebuilds std (-Zbuild-std) for armv7 and
# mips/mipsel, for which this rustup serves no std (mips* are tier 3, armv7 musl is refused here).
RUST_TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
# PyPI: zig is the cross C compiler and linker for every target (ring's C and assembly, musl's crt and libc),
# one download instead of a gcc per architecture; cargo-zigbuild points cargo at it. Pinned together:
# cargo-zigbuild 0.24 knows zig 0.15's command line, and a zig upgrade changes the bundled musl and
# compiler-rt, so it is a deliberate change here (see DESIGN.md, "Firmware builds").
ZIGLANG=0.15.2
CARGO_ZIGBUILD=0.24.1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "install-cross.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-cross.sh: need root to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -qq
    # shellcheck disable=SC2086
    run apt-get install -y -qq --no-install-recommends $missing
fi

installed_targets=$(rustup target list --installed)
for t in $RUST_TARGETS; do
    if ! grep -qx "$t" <<<"$installed_targets"; then
        run rustup target add "$t"
    fi
done
if ! rustup component list --installed | grep -q '^rust-src'; then
    run rustup component add rust-src
fi

pip_install() {
    python3 -m pip install -q --disable-pip-version-check "$@" >>"$log" 2>&1 \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@" >>"$log" 2>&1
}
have_version() { # PACKAGE VERSION: whether pip has exactly that version installed
    python3 -m pip show "$1" 2>/dev/null | grep -qx "Version: $2"
}
if ! have_version ziglang "$ZIGLANG" || ! have_version cargo-zigbuild "$CARGO_ZIGBUILD"; then
    if ! pip_install "ziglang==$ZIGLANG" "cargo-zigbuild==$CARGO_ZIGBUILD"; then
        echo "install-cross.sh: pip could not install ziglang and cargo-zigbuild" >&2
        cat "$log" >&2
        exit 1
    fi
fi
# pip puts cargo-zigbuild beside python3's scripts; pyenv shims or a venv put that on PATH, Debian's
# python may not: say where it is when it cannot be found.
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
    bin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    echo "install-cross.sh: cargo-zigbuild is in $bin, which is not on PATH" >&2
    exit 1
fi
