#!/usr/bin/env bash
# Checks that a release binary is statically linked (no program interpreter, no shared library needed) and prints its size.
set -euo pipefail
bin=$1
if [ ! -f "$bin" ]; then
    echo "check-static.sh: $bin: no such file" >&2
    exit 1
fi
if readelf -lW "$bin" | grep -q 'INTERP'; then
    echo "check-static.sh: $bin asks for a program interpreter (dynamically linked):" >&2
    readelf -lW "$bin" | grep -A1 INTERP >&2
    exit 1
fi
if readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
    echo "check-static.sh: $bin needs shared libraries:" >&2
    readelf -dW "$bin" | grep '(NEEDED)' >&2
    exit 1
fi
echo "$bin: $(stat -c %s "$bin") bytes, $(file -b "$bin" | cut -d, -f1-3), static"
