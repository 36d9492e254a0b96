#!/usr/bin/env bash
# tests/shellcheck.sh: `make lint`'s shell check, shellcheck over every shell script of the repository (installed from Debian if missing).
#
# A shell script is a file named *.sh or one whose first line starts it with sh, bash or dash (the init
# scripts, .ci/run). shellcheck comes from Debian's package when it is missing: `make lint` runs before
# tests/install-deps.sh in `make check`, so it needs to fetch it itself on a fresh machine (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v shellcheck >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "shellcheck.sh: shellcheck is missing (as root this script installs Debian's package)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi
scripts=()
while IFS= read -r -d '' f; do
    case $f in
        *.sh) scripts+=("$f") ;;
        *) if head -n 1 "$f" | grep -qE '^#!(/usr)?/bin/(env )?(ba|da)?sh\b'; then scripts+=("$f"); fi ;;
    esac
done < <(find . \( -path ./.git -o -path ./target -o -path ./fuzz/target -o -path ./fuzz/corpus \
    -o -path ./fuzz/regressions -o -path ./fuzz/artifacts \) -prune -o -type f -print0 | sort -z)
shellcheck "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} shell scripts, no finding"
