#!/usr/bin/env bash
# Installs the real POP3 clients and tools used by tests/interop on Debian (run as root; idempotent, quiet).
set -euo pipefail

# curl/fetchmail/mpop/getmail6: real clients; procmail, dma: real delivery agents; ucspi-tcp: tcpserver for
# inetd mode; strace: the crash suite kills pop3d at chosen system calls; openssl: password hashes, the test PKI of the TLS tests and s_client; systemd: systemd-analyze
# verify for the shipped units (start-stop-daemon, for the init.d script, comes with dpkg); mandoc and
# groff-base (groff's man macros): both lint the man pages (test_install.py); make: `make install`. s-nail,
# mailutils (movemail), Perl's Net::POP3 with libauthen-sasl-perl and libio-socket-ssl-perl: more real clients
# (test_clients.py). g++: the libFuzzer runtime the fuzz targets link (tests/fuzz.sh). mutt, neomutt (in a
# pseudo-terminal), php-cli with php-imap (c-client), libmail-pop3client-perl and ruby (net-pop, a bundled gem):
# clients on their own defaults (test_client_defaults.py); haproxy: in front of two daemons (test_haproxy.py).
# btrfs-progs, xfsprogs (and e2fsprogs, always there): the filesystems UPDATE and the crash suite are tested on,
# made in loop files (loopfs.py).
PKGS="curl fetchmail mpop getmail6 ucspi-tcp procmail dma openssl systemd python3 ca-certificates mandoc groff-base make strace s-nail mailutils perl libauthen-sasl-perl libio-socket-ssl-perl g++ mutt neomutt php-cli php-imap libmail-pop3client-perl ruby haproxy btrfs-progs xfsprogs e2fsprogs"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "install-deps.sh: failed: $*" >&2
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
        echo "install-deps.sh: need root to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -qq
    # shellcheck disable=SC2086
    run apt-get install -y -qq --no-install-recommends $missing
fi

# pytest for whichever python3 runs the suite (pyenv, venv or Debian's own).
if ! python3 -c 'import pytest' >/dev/null 2>&1; then
    if ! python3 -m pip install -q --disable-pip-version-check pytest >>"$log" 2>&1 \
        && ! python3 -m pip install -q --disable-pip-version-check --break-system-packages pytest >>"$log" 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        run apt-get update -qq
        run apt-get install -y -qq --no-install-recommends python3-pytest
    fi
    if ! python3 -c 'import pytest' >/dev/null 2>&1; then
        echo "install-deps.sh: pytest is not importable by $(command -v python3)" >&2
        cat "$log" >&2
        exit 1
    fi
fi

# scramp (PyPI): a real SCRAM-SHA-256 client library for test_tls_sasl.py.
if ! python3 -c 'import scramp' >/dev/null 2>&1; then
    if ! python3 -m pip install -q --disable-pip-version-check scramp >>"$log" 2>&1 \
        && ! python3 -m pip install -q --disable-pip-version-check --break-system-packages scramp >>"$log" 2>&1; then
        echo "install-deps.sh: pip could not install scramp for $(command -v python3)" >&2
        cat "$log" >&2
        exit 1
    fi
    if ! python3 -c 'import scramp' >/dev/null 2>&1; then
        echo "install-deps.sh: scramp is not importable by $(command -v python3)" >&2
        cat "$log" >&2
        exit 1
    fi
fi
