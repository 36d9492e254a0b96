# run.sh: `make bench` -- measures pop3d against Dovecot and popa3d side by side on 127.0.0.1.
# shellcheck shell=bash
#
# Usage (as root; it installs what it needs with apt-get and creates bench system users):
#   bash bench/run.sh                 run everything, print the table
#   bash bench/run.sh --remove-users  delete the bench system users (pb0000..pb0999, pbretr, pbbig)
# Environment:
#   BENCH_DIR=/tmp/pop3d-bench   work dir (packages, generated mboxes, server state; kept for re-runs)
#   BENCH_SECS=5                 seconds per login-rate measurement
#   BENCH_IDLE=1000              idle sessions in the RSS test
#   BENCH_TLS_RUNS=3             runs per POP3S sessions/s figure (the best is kept)
#   BENCH_DOVECOT_PORT=21110 BENCH_POPA3D_PORT=21111   loopback ports (pop3d picks a free one)
#   BENCH_DOVECOT_TLS_PORT=21112  Dovecot's POP3S port in the TLS phase
#   BENCH_ONLY="pop3d dovecot popa3d"  servers to run
#   BENCH_CG_MSGS=2000           messages RETRieved in the callgrind workload (of the 100 MB mbox)
#   BENCH_HASHES=500             crypt(3) calls timed for the cost of one hash
#   BENCH_MAILDIR_MSGS=100000 BENCH_MAILDIR_BYTES=400000000   the Maildir of phase 8
#   BENCH_PHASES="stat login retr callgrind tls update idle maildir updatefs size busy household spacing flood"
#                                phases to run (default: all), e.g. BENCH_PHASES=updatefs bash bench/run.sh (UPDATE
#                                on loop filesystems, phase 9) or BENCH_PHASES="busy household spacing flood" (issue
#                                18's, bench/busy.sh: its own settings are listed there)
#   BENCH_UPDFS="btrfs xfs ext4" BENCH_UPDFS_RUNS=3   phase 9: filesystems, and runs per server (best time kept)
#   BENCH_RESULTS=$BENCH_DIR/results-TIME.txt   where the figures are saved (key=value)
# Nothing is committed; the figures are saved in BENCH_RESULTS and bench/report.py prints the report
# from them (the targets and verdicts are its table; `python3 bench/report.py FILE` prints a saved run
# again). All traffic goes to 127.0.0.1, every load loop is bounded in count and time, and the servers
# are stopped on exit.
# POP3S (phase 5): pop3d and Dovecot are restarted with implicit TLS added, both serving one
# self-signed ECDSA P-256 certificate made here with openssl; popa3d has no TLS.
# The limits pop3d's own costs are compared with are measured in the same run: a trivial sender
# (`pop3bench trivial-send`: the same mbox read and written to a loopback socket as it is, plain
# and through rustls), one crypt(3) SHA512-CRYPT hash (perl's crypt, i.e. the system's libcrypt,
# which pop3d calls too), and instructions per octet under `valgrind --tool=callgrind`.
# Phase 8 restarts pop3d and Dovecot on a 100,000-message Maildir (pop3d: mailbox = maildir:...).
# Phase 9 makes btrfs, XFS (reflink) and ext4 filesystems in 1 GB loop files under BENCH_DIR, restarts pop3d
# and Dovecot with their mailboxes and state there (one filesystem each time, both servers on it), and times
# UPDATE beside the octets the filesystem wrote to its device.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
W=${BENCH_DIR:-/tmp/pop3d-bench}
SECS=${BENCH_SECS:-5}
NIDLE=${BENCH_IDLE:-1000}
DPORT=${BENCH_DOVECOT_PORT:-21110}
PPORT=${BENCH_POPA3D_PORT:-21111}
DSPORT=${BENCH_DOVECOT_TLS_PORT:-21112}
TLSRUNS=${BENCH_TLS_RUNS:-3}
CGMSGS=${BENCH_CG_MSGS:-2000}
NHASH=${BENCH_HASHES:-500}
MDMSGS=${BENCH_MAILDIR_MSGS:-100000}
MDBYTES=${BENCH_MAILDIR_BYTES:-400000000}
PHASES=${BENCH_PHASES:-stat login retr callgrind tls update idle maildir updatefs size busy household spacing flood}
UPDFS_LIST=${BENCH_UPDFS:-btrfs xfs ext4}
UPDFS_RUNS=${BENCH_UPDFS_RUNS:-3}
SERVERS=${BENCH_ONLY:-pop3d dovecot popa3d}
PASS=benchpass
SALT=pop3bench
NUSERS=1000                       # pb0000 .. pb0999: login and idle accounts (small mailbox)
MAXLOGIN=50000                    # sessions per login-rate measurement, at most
BENCHGROUP=pop3bench

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

all_users() { seq -f 'pb%04g' 0 $((NUSERS - 1)); echo pbretr; echo pbbig; }

if [ "${1:-}" = "--remove-users" ]; then
    for u in $(all_users); do id "$u" >/dev/null 2>&1 && userdel "$u"; done
    getent group "$BENCHGROUP" >/dev/null && groupdel "$BENCHGROUP"
    rm -rf /var/lib/pop3bench-home
    exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, creates bench users, runs popa3d)"
[ "$(uname -s)" = Linux ] || die "Linux only (reads /proc)"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((NIDLE * 2 + 100)) ] || die "need ulimit -n >= $((NIDLE * 2 + 100))"

mkdir -p "$W"/{pkgs,bin,data}
chmod 755 "$W"
BIN=$W/bin/pop3bench
CERT=$W/tls/cert.pem
KEY=$W/tls/key.pem
TLS=0                # 1: servers are started with implicit TLS (POP3S) listeners too
STORE=mbox           # maildir: pop3d and Dovecot are started on the Maildirs of phase 8
P3D=$ROOT/target/release/pop3d
DV=$W/root/dovecot
TCPSERVER=tcpserver
PA=$W/root/popa3d
UPDFS=               # phase 9: the loop filesystem pop3d's and Dovecot's mailboxes and state are on (else $W/srv)
want() { [[ " $PHASES " == *" $1 "* ]]; }   # want PHASE: whether BENCH_PHASES asks for it

# ------------------------------------------------------------------ cleanup on exit
PIDS=()              # server pids we started (killed on exit)
MOUNTS=()            # loop filesystems we mounted (phase 9; unmounted on exit)
PAM_INSTALLED=0
MADE_LIBDIR=0
kill_popa3d_sessions() { # popa3d session processes of the bench users (they outlive tcpserver)
    local pids
    pids=$(ps -eo pid=,user:32=,comm= | awk '$3 == "popa3d" && $2 ~ /^pb([0-9][0-9][0-9][0-9]|retr|big)$/ { print $1 }')
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    kill_popa3d_sessions
    for m in "${MOUNTS[@]}"; do mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }; done
    rm -f /var/mail/pb[0-9][0-9][0-9][0-9] /var/mail/pbretr /var/mail/pbbig /var/mail/pb*.lock
    [ "$PAM_INSTALLED" = 1 ] && rm -f /etc/pam.d/popa3d
    [ "$MADE_LIBDIR" = 1 ] && rmdir /usr/lib/dovecot
    # the mailbox copies go; configs and logs stay in $W/srv for a look after the run
    rm -rf "$W"/srv/*/spool "$W"/srv/*/index "$W"/srv/*/home "$W"/srv/*/state \
        "$W"/srv/*/maildir "$W"/srv/*/index-md "$W"/srv/*/state-md
    wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ packages
setup_packages() {
    log "apt-get update / install (ucspi-tcp, openssl, python3, the libraries Dovecot needs)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    (cd "$W/pkgs" && chown _apt "$W/pkgs" 2>/dev/null; \
        ls dovecot-core_*.deb dovecot-pop3d_*.deb popa3d_*.deb >/dev/null 2>&1 \
        || apt-get download -qq dovecot-core dovecot-pop3d popa3d) || die "apt-get download failed"
    local deps
    deps=$(for f in "$W"/pkgs/*.deb; do dpkg-deb -f "$f" Depends; done | tr ',' '\n' \
        | sed 's/(.*//; s/|.*//; s/ //g' | grep -E '^lib' | grep -v '^libpam-runtime$' | sort -u)
    # btrfs-progs, xfsprogs: the loop filesystems of phase 9
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends ucspi-tcp openssl procps libpam-modules python3 btrfs-progs xfsprogs \
        $deps >/dev/null \
        || die "apt-get install failed"
    if [ ! -x "$DV/usr/sbin/dovecot" ] || [ ! -x "$PA/usr/sbin/popa3d" ]; then
        rm -rf "$W/root"; mkdir -p "$DV" "$PA"
        for f in "$W"/pkgs/dovecot-*.deb; do dpkg-deb -x "$f" "$DV"; done
        dpkg-deb -x "$W"/pkgs/popa3d_*.deb "$PA"
    fi
    TCPSERVER=$(command -v tcpserver) || die "tcpserver missing"
}

build_tools() {
    # a cargo example, for rustls (a dependency of pop3d): cargo rebuilds it only when needed
    log "building the load client (cargo build --release --example pop3bench)"
    (cd "$ROOT" && cargo build --release --example pop3bench -q) || die "cannot build pop3bench"
    cmp -s "$ROOT/target/release/examples/pop3bench" "$BIN" \
        || install -m 755 "$ROOT/target/release/examples/pop3bench" "$BIN" || die "cannot copy pop3bench"
    if [[ " $SERVERS " == *" pop3d "* ]] && [ ! -x "$P3D" ]; then
        log "target/release/pop3d missing: cargo build --release"
        (cd "$ROOT" && cargo build --release -q) || die "cargo build --release failed"
    fi
}

gen_data() {
    # generated once, deterministic; regenerated when the generator changes
    local stamp=gen-v1   # bump when the generator (examples/pop3bench/mailgen.rs, src/testkit/rng.rs) changes
    if [ "$(cat "$W/data/stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$W/data/retr.mbox" ] \
        || [ ! -f "$W/data/big.mbox" ] || [ ! -f "$W/data/small.mbox" ]; then
        log "generating mboxes (100 MB / 2,000 messages; 1 GB / 100,000 messages; small 10 messages)"
        rm -rf "$W"/data/*
        "$BIN" gen --out "$W/data/retr.mbox" --messages 2000 --bytes 100000000 --seed 1 >/dev/null
        "$BIN" gen --out "$W/data/big.mbox" --messages 100000 --bytes 1000000000 --seed 2 >/dev/null
        "$BIN" gen --out "$W/data/small.mbox" --messages 10 --bytes 40000 --seed 3 >/dev/null
        echo "$stamp" > "$W/data/stamp"
    fi
    # 100 new messages (about 1 MB) appended to the 1 GB mbox in phase 1
    [ -f "$W/data/append.mbox" ] \
        || "$BIN" gen --out "$W/data/append.mbox" --messages 100 --bytes 1000000 --seed 4 >/dev/null
    local mdstamp="md-v1 $MDMSGS $MDBYTES"
    if [ "$(cat "$W/data/maildir.stamp" 2>/dev/null)" != "$mdstamp" ]; then
        log "generating a Maildir ($MDMSGS messages, $MDBYTES bytes)"
        rm -rf "$W/data/maildir"
        "$BIN" gen-maildir --out "$W/data/maildir" --messages "$MDMSGS" --bytes "$MDBYTES" --seed 5 >/dev/null
        echo "$mdstamp" > "$W/data/maildir.stamp"
    fi
}

# One self-signed ECDSA P-256 certificate for 127.0.0.1, made fresh each run, served by both
# pop3d and Dovecot and the only one the client trusts. CA:FALSE: webpki (rustls) refuses a
# CA certificate as a server's own certificate. The key is root's, readable by group nogroup
# (pop3d reads it before dropping root; the Dovecot config process runs as root).
make_cert() {
    log "making the bench certificate (ECDSA P-256, self-signed, CN=localhost, IP 127.0.0.1)"
    rm -rf "$W/tls"; mkdir -p "$W/tls"; chmod 755 "$W/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
        -addext keyUsage=critical,digitalSignature -addext extendedKeyUsage=serverAuth \
        -keyout "$KEY" -out "$CERT" 2>"$W/tls/openssl.err" || { cat "$W/tls/openssl.err" >&2; die "openssl req failed"; }
    chmod 644 "$CERT"; chgrp nogroup "$KEY"; chmod 640 "$KEY"
}

# ------------------------------------------------------------------ accounts and mailboxes
HASH=
setup_users() {
    HASH=$(openssl passwd -6 -salt "$SALT" "$PASS")
    getent group "$BENCHGROUP" >/dev/null || groupadd "$BENCHGROUP"
    local gid missing=()
    gid=$(getent group "$BENCHGROUP" | cut -d: -f3)
    # system users Dovecot's and popa3d's packages would create
    id dovecot  >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin dovecot
    id dovenull >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin dovenull
    id popa3d   >/dev/null 2>&1 || useradd -r -M -d /var/lib/popa3d -s /usr/sbin/nologin popa3d
    mkdir -p /var/lib/popa3d && chown root:root /var/lib/popa3d && chmod 755 /var/lib/popa3d
    if [ ! -e /etc/pam.d/popa3d ]; then
        cp "$PA/etc/pam.d/popa3d" /etc/pam.d/popa3d && PAM_INSTALLED=1
    fi
    # real system users for popa3d (PAM -> pam_unix -> /etc/shadow, mailbox /var/mail/USER);
    # created once (newusers is slow: ~30 s for 1,000) and kept for re-runs
    for u in $(all_users); do id "$u" >/dev/null 2>&1 || missing+=("$u"); done
    if [ ${#missing[@]} -gt 0 ]; then
        log "creating ${#missing[@]} bench system users (once; remove with: bash bench/run.sh --remove-users)"
        mkdir -p /var/lib/pop3bench-home
        for u in "${missing[@]}"; do
            echo "$u:*::$gid:pop3d bench:/var/lib/pop3bench-home:/usr/sbin/nologin"
        done | newusers || die "newusers failed"
    fi
    for u in $(all_users); do echo "$u:$HASH"; done | chpasswd -e || die "chpasswd failed"
}

# copy_mailboxes DIR OWNER: every bench account's mailbox under DIR (name = user)
copy_mailboxes() {
    local dir=$1 owner=$2 u
    mkdir -p "$dir"
    for u in $(seq -f 'pb%04g' 0 $((NUSERS - 1))); do cp "$W/data/small.mbox" "$dir/$u"; done
    cp "$W/data/retr.mbox" "$dir/pbretr"
    cp "$W/data/big.mbox" "$dir/pbbig"
    chmod 600 "$dir"/pb*
    [ -n "$owner" ] && chown -R "$owner" "$dir"
    return 0
}

setup_mailboxes() {
    log "copying mailboxes (each server its own copy: 1,000 x small, 100 MB, 1 GB)"
    rm -rf "$W/srv"; mkdir -p "$W/srv"
    local s
    for s in $SERVERS; do
        case $s in
            pop3d)
                mkdir -p "$W/srv/pop3d/state"
                copy_mailboxes "$W/srv/pop3d/spool" nobody:nogroup
                chown nobody:nogroup "$W/srv/pop3d/state"; chmod 700 "$W/srv/pop3d/state"
                for u in $(all_users); do echo "$u:$HASH"; done > "$W/srv/pop3d/users"
                chown root:nogroup "$W/srv/pop3d/users"; chmod 640 "$W/srv/pop3d/users"
                ;;
            dovecot)
                mkdir -p "$W/srv/dovecot"/{run,state,home,index}
                copy_mailboxes "$W/srv/dovecot/spool" nobody:nogroup
                chown nobody:nogroup "$W/srv/dovecot"/{home,index}
                for u in $(all_users); do echo "$u:{SHA512-CRYPT}$HASH"; done > "$W/srv/dovecot/users"
                chmod 644 "$W/srv/dovecot/users"
                ;;
            popa3d)
                for u in $(all_users); do rm -f "/var/mail/$u"; done
                local u
                for u in $(seq -f 'pb%04g' 0 $((NUSERS - 1))); do cp "$W/data/small.mbox" "/var/mail/$u"; done
                cp "$W/data/retr.mbox" /var/mail/pbretr
                cp "$W/data/big.mbox" /var/mail/pbbig
                for u in $(all_users); do chown "$u:mail" "/var/mail/$u"; chmod 600 "/var/mail/$u"; done
                ;;
        esac
    done
    sync
}

# ------------------------------------------------------------------ servers
declare -A ADDR TADDR PID   # plaintext address, POP3S address (TLS phase), pid
POP3D_STARTS=0
port_free() { # port_free PORT: nothing listens on 127.0.0.1:PORT
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || die "127.0.0.1:$1 is in use (set BENCH_DOVECOT_PORT / BENCH_POPA3D_PORT)"
}
wait_port() { # wait_port HOST PORT: until it accepts (10 s)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_pop3d() {
    local d=$W/srv/pop3d listen=127.0.0.1:0 tlsconf=
    if [ "$TLS" = 1 ]; then
        listen="127.0.0.1:0, 127.0.0.1:0 tls"
        tlsconf=$(printf 'tls_cert = %s\ntls_key = %s' "$CERT" "$KEY")
    fi
    local mailbox=${UPDFS:-$W/srv}/pop3d/spool/%u state=${UPDFS:-$W/srv}/pop3d/state
    if [ "$STORE" = maildir ]; then mailbox=maildir:$d/maildir/%u state=$d/state-md; fi
    cat > "$d/pop3d.conf" <<EOF
# pop3d.conf for the benchmark (generated by bench/run.sh)
listen = $listen
$tlsconf
user = nobody
users_file = $d/users
mailbox = $mailbox
state_dir = $state
max_sessions = $((NIDLE * 2))
max_sessions_per_ip = $((NIDLE * 2))
log = stderr
EOF
    POP3D_STARTS=$((POP3D_STARTS + 1))
    local lf=$d/pop3d.$POP3D_STARTS.log
    "$P3D" -f "$d/pop3d.conf" -o log=stderr 2>"$lf" &
    PID[pop3d]=$!; PIDS+=("$!")
    local a='' t=''
    for _ in $(seq 100); do
        # "listening on 127.0.0.1:PORT", and "... (TLS)" for the POP3S listener
        a=$(grep -v '(TLS)' "$lf" | grep -oE 'listening on [^ ]+' | head -1 | cut -d' ' -f3) || true
        t=$(grep '(TLS)$' "$lf" | grep -oE 'listening on [^ ]+' | head -1 | cut -d' ' -f3) || true
        [ -n "$a" ] && { [ "$TLS" = 0 ] || [ -n "$t" ]; } && break
        kill -0 "${PID[pop3d]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$a" ] || { [ "$TLS" = 1 ] && [ -z "$t" ]; }; then cat "$lf" >&2; die "pop3d did not start"; fi
    ADDR[pop3d]=$a
    TADDR[pop3d]=$t
}

start_dovecot() {
    local d=$W/srv/dovecot lib=$DV/usr/lib/dovecot conf=$W/srv/dovecot/dovecot.conf
    local m=${UPDFS:-$W/srv}/dovecot
    local ssl="ssl = no" pop3s='' location=mbox:$m/home/%u/mail:INBOX=$m/spool/%u:INDEX=$m/index/%u
    [ "$STORE" = maildir ] && location=maildir:$d/maildir/%u:INDEX=$d/index-md/%u
    if [ "$TLS" = 1 ]; then
        ssl=$(printf 'ssl = yes\nssl_cert = <%s\nssl_key = <%s' "$CERT" "$KEY")
        pop3s=$(printf '  inet_listener pop3s {\n    address = 127.0.0.1\n    port = %s\n    ssl = yes\n  }' "$DSPORT")
    fi
    cat > "$conf" <<EOF
# dovecot.conf for the benchmark (generated by bench/run.sh): POP3 only, mbox (Maildir in
# phase 8); plaintext, and in the TLS phase POP3S as well
protocols = pop3
listen = 127.0.0.1
instance_name = pop3bench
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
$ssl
disable_plaintext_auth = no
auth_mechanisms = plain login
default_process_limit = $((NIDLE + 200))
default_client_limit = $((NIDLE * 4 + 1000))
default_vsz_limit = 2G
first_valid_uid = 1
mail_location = $location
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $d/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$d/home/%u
}
protocol pop3 {
  mail_max_userip_connections = $((NIDLE * 2))
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $DPORT
  }
$pop3s
}
EOF
    # The package was extracted privately, not installed, and Dovecot has /usr/lib/dovecot
    # compiled in (services, modules, libraries): run it in a private mount namespace where
    # that path is a bind mount of the extracted tree. doveconf -e reads the config and execs
    # the master (which would otherwise exec /usr/bin/doveconf).
    if [ ! -d /usr/lib/dovecot ]; then mkdir /usr/lib/dovecot; MADE_LIBDIR=1; fi
    port_free "$DPORT"
    [ "$TLS" = 0 ] || port_free "$DSPORT"
    # shellcheck disable=SC2016
    unshare -m --propagation private sh -c 'mount --bind "$0" /usr/lib/dovecot && exec "$@"' "$lib" \
        "$DV/usr/bin/doveconf" -c "$conf" -e "$DV/usr/sbin/dovecot" -F -c "$conf" >>"$d/dovecot.log" 2>&1 &
    PID[dovecot]=$!; PIDS+=("$!")
    wait_port 127.0.0.1 "$DPORT" || { cat "$d/dovecot.log" >&2; die "dovecot did not start"; }
    ADDR[dovecot]=127.0.0.1:$DPORT
    TADDR[dovecot]=
    if [ "$TLS" = 1 ]; then
        wait_port 127.0.0.1 "$DSPORT" || { cat "$d/dovecot.log" >&2; die "dovecot did not open its POP3S port"; }
        TADDR[dovecot]=127.0.0.1:$DSPORT
    fi
}

start_popa3d() {
    # Debian's popa3d: inetd-style, PAM service "popa3d" (pam_unix: /etc/shadow), mail in
    # /var/mail/USER, privilege separation with user popa3d chrooted to /var/lib/popa3d.
    # -D sets TCP_NODELAY: popa3d does not, and without it every RETR waits ~40 ms for the
    # client's delayed ACK (Nagle), which measures the TCP stack, not popa3d (~1.3 MB/s here).
    port_free "$PPORT"
    "$TCPSERVER" -q -D -HRl0 -c $((NIDLE + 100)) -b 256 127.0.0.1 "$PPORT" "$PA/usr/sbin/popa3d" &
    PID[popa3d]=$!; PIDS+=("$!")
    wait_port 127.0.0.1 "$PPORT" || die "tcpserver/popa3d did not start"
    ADDR[popa3d]=127.0.0.1:$PPORT
}

stop_server() {
    local s=$1 p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    [ "$s" = popa3d ] && kill_popa3d_sessions   # sessions outlive tcpserver
    PID[$s]=
    return 0
}

start_server() {
    case $1 in
        pop3d) start_pop3d ;; dovecot) start_dovecot ;; popa3d) start_popa3d ;;
    esac
    log "$1 listening on ${ADDR[$1]}${TADDR[$1]:+ and ${TADDR[$1]} (POP3S)} (pid ${PID[$1]})"
}

# ------------------------------------------------------------------ measurements
declare -A R        # R[metric,server] = figure
kv() { # kv KEY LINE -> value of KEY=... in LINE
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}
num() { [[ "$1" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; }

# check_login SERVER [tls]: one login (over POP3S with tls), to fail early with a clear message
check_login() {
    local out addr=${ADDR[$1]} tlsarg=()
    [ -z "${2:-}" ] || { addr=${TADDR[$1]}; tlsarg=(--tls "$CERT"); }
    out=$(timeout 30 "$BIN" logins --addr "$addr" --prefix pb --users 1 --pass "$PASS" \
        --conc 1 --secs 1 --max 1 "${tlsarg[@]}" 2>&1) || true
    [ "$(kv sessions "$(grep RESULT <<<"$out")")" = 1 ] || { echo "$out" >&2; return 1; }
}

# proc_mem SERVER [COMM] -> RESULT line of `pop3bench mem` for the server's process tree
proc_mem() { "$BIN" mem --pid "${PID[$1]}" ${2:+--comm "$2"}; }
# proc_cpu SERVER -> CPU clock ticks used so far by the server's process tree (with reaped children)
proc_cpu() { kv cpu_ticks "$(proc_mem "$1")"; }
TICK=$(getconf CLK_TCK)
# cpu_mark -> "BUSY TOTAL OURS": machine-wide busy (user+nice+system+steal) and total CPU ticks
# from /proc/stat, and the ticks of this script's process tree (servers, clients, with reaped
# children). other_cpu MARK0 MARK1 -> % of all CPUs that other work (builds, other jobs, the
# hypervisor's steal) used in between: what skews the rates on a shared machine.
cpu_mark() {
    echo "$(awk '/^cpu / { print $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)" \
        "$(kv cpu_ticks "$("$BIN" mem --pid $$)")"
}
other_cpu() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]
        o = (y[1] - x[1]) - (y[3] - x[3]); if (o < 0) o = 0
        if (t > 0) printf "%.0f", 100 * o / t; else print "n/a" }'
}
# keep_best KEY VALUE: R[KEY] = the larger of the two (best of N runs)
keep_best() {
    num "$2" || return 0
    if num "${R[$1]:-}"; then R[$1]=$(awk -v a="${R[$1]}" -v b="$2" 'BEGIN { print (b > a) ? b : a }'); else R[$1]=$2; fi
}

bigstat() { # bigstat SERVER TAG [WHAT]: connect + login + STAT as pbbig (the 1 GB mbox, or the Maildir), with peak RSS
    local s=$1 tag=$2 what=${3:-1 GB mbox} line res hwm
    # pop3d serves every session in one process: its peak RSS (VmHWM) is reset to the
    # current RSS first, so the figure is the peak during this session; the RSS it starts
    # from (what earlier sessions left) is kept too
    if [ "$s" = pop3d ]; then
        echo 5 > "/proc/${PID[pop3d]}/clear_refs" || log "cannot reset pop3d's VmHWM"
        R[statrss0$tag,$s]=$(awk '/^VmRSS:/ {print $2}' "/proc/${PID[pop3d]}/status")
    fi
    coproc STATC { timeout 300 "$BIN" stat --addr "${ADDR[$s]}" --user pbbig --pass "$PASS" --hold 120; }
    local in=${STATC[0]} outfd=${STATC[1]} cpid=$STATC_PID
    IFS= read -r -t 300 line <&"$in" || true
    case $s in
        pop3d)   hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[pop3d]}/status") ;;
        dovecot) hwm=$(kv comm_hwm_max_kb "$(proc_mem dovecot pop3)") ;;
        popa3d)  hwm=$(kv comm_hwm_max_kb "$(proc_mem popa3d popa3d)") ;;
    esac
    echo quit >&"$outfd"
    IFS= read -r -t 60 res <&"$in" || true
    wait "$cpid" 2>/dev/null || true
    [ "$(kv error "$res")" = 1 ] || [ -z "$res" ] && { log "$s: STAT on the $what failed"; return 0; }
    R[stat$tag,$s]=$(kv stat_ms "$res")
    R[statrss$tag,$s]=$hwm
    log "$s: $what ($tag): STAT after $(kv stat_ms "$res") ms (login answered after $(kv login_ms "$res") ms), $(kv messages "$res") messages, peak RSS ${hwm} kB${R[statrss0$tag,$s]:+ (RSS before the session ${R[statrss0$tag,$s]} kB)}"
}

login_rate() { # login_rate SERVER CONC [tls]: one run; over POP3S with tls (full handshakes, best run kept)
    local s=$1 c=$2 tls=${3:-} out res addr=${ADDR[$1]} tlsarg=() what="login+STAT+QUIT" cpu0 cpu1 cpums
    if [ -n "$tls" ]; then
        addr=${TADDR[$s]} tlsarg=(--tls "$CERT") what="POP3S handshake+login+STAT+QUIT"
    fi
    cpu0=$(proc_cpu "$s")
    out=$(timeout $((SECS + 60)) "$BIN" logins --addr "$addr" --prefix pb --users "$NUSERS" \
        --pass "$PASS" --conc "$c" --secs "$SECS" --max "$MAXLOGIN" "${tlsarg[@]}" 2> "$W/srv/err.txt") || true
    cpu1=$(proc_cpu "$s")
    res=$(grep RESULT <<<"$out" || true)
    # server CPU (its whole process tree) per session: unlike sessions/s, other load on the
    # machine hardly changes it
    cpums=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(kv sessions "$res")" -v t="$TICK" \
        'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1000 / t / n; else print "n/a" }')
    if [ -z "$tls" ]; then
        R[login$c,$s]=$(kv rate "$res")
        R[logincpu$c,$s]=$cpums
        log "$s: $what x$c: $(kv sessions "$res") sessions in $(kv secs "$res") s = $(kv rate "$res")/s (p50 $(kv p50_ms "$res") ms, p99 $(kv p99_ms "$res") ms, errors $(kv errors "$res"); server CPU $cpums ms/session)"
    else
        if [ "$(kv errors "$res")" = 0 ] && [ "$(kv resumed "$res")" = 0 ]; then
            keep_best "tlslogin$c,$s" "$(kv rate "$res")"
            # the CPU, handshake time and what was negotiated of the best run
            if [ "${R[tlslogin$c,$s]}" = "$(kv rate "$res")" ]; then
                R[tlscpu$c,$s]=$cpums
                R[tlshs$c,$s]=$(kv hs_p50_ms "$res")
                R[tlsinfo,$s]=$(kv tls "$res")
            fi
        fi
        local resumed
        resumed=$(kv resumed "$res")
        R[tlsresumed,$s]=$(( ${R[tlsresumed,$s]:-0} + ${resumed:-0} ))
        log "$s: $what x$c: $(kv sessions "$res") sessions in $(kv secs "$res") s = $(kv rate "$res")/s (p50 $(kv p50_ms "$res") ms, p99 $(kv p99_ms "$res") ms, handshake p50 $(kv hs_p50_ms "$res") ms, p99 $(kv hs_p99_ms "$res") ms; $(kv tls "$res"); full handshakes $(kv full_handshakes "$res"), resumed $(kv resumed "$res"), errors $(kv errors "$res"); server CPU $cpums ms/session)"
    fi
    [ "$(kv errors "$res")" = 0 ] || sed 's/^/    /' "$W/srv/err.txt" >&2
}

retr_rate() { # retr_rate SERVER WINDOW [tls]
    local s=$1 w=$2 tls=${3:-} out res addr=${ADDR[$1]} tlsarg=() key=retr$2 what=RETR cpu0 cpu1 cpugb
    if [ -n "$tls" ]; then
        addr=${TADDR[$s]} tlsarg=(--tls "$CERT") key=tlsretr$w what="POP3S RETR"
    fi
    cpu0=$(proc_cpu "$s")
    out=$(timeout 120 "$BIN" retr --addr "$addr" --user pbretr --pass "$PASS" --passes 5 --secs 30 \
        --window "$w" "${tlsarg[@]}" 2> "$W/srv/err.txt") || true
    cpu1=$(proc_cpu "$s")
    res=$(grep RESULT <<<"$out" || true)
    if [ "$(kv skipped "$res")" = 1 ]; then
        log "$s: $what, window $w: skipped (CAPA does not list PIPELINING)"
        return 0
    fi
    if [ "$(kv error "$res")" = 1 ] || [ -z "$res" ]; then
        log "$s: $what (window $w): $(grep -v '^pop3bench retr: pass' "$W/srv/err.txt" | tail -1)"
        return 0
    fi
    # server CPU seconds per 10^9 message octets, over all the passes
    cpugb=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(kv total_bytes "$res")" -v t="$TICK" \
        'BEGIN { if (n > 0) printf "%.2f", (b - a) / t / n * 1e9; else print "n/a" }')
    R[$key,$s]=$(kv mbs "$res")
    R[${key}cpu,$s]=$cpugb
    R[retrmis,$s]=$(( ${R[retrmis,$s]:-0} + $(kv size_mismatches "$res") ))
    log "$s: $what all, window $w: $(kv messages "$res") messages, $(kv bytes "$res") octets in $(kv secs "$res") s = $(kv mbs "$res") MB/s (best of 5${tls:+; $(kv tls "$res")}; LIST/RETR size mismatches: $(kv size_mismatches "$res"); server CPU $cpugb s/GB)"
    grep -v '^pop3bench retr: pass' "$W/srv/err.txt" | sed 's/^/    /' >&2 || true
}

idle_rss() {
    local s=$1 before after line res n
    sleep 0.5
    before=$(proc_mem "$s")
    coproc IDLEC { timeout 600 "$BIN" idle --addr "${ADDR[$s]}" --prefix pb --users "$NIDLE" --pass "$PASS" --conc 8 --hold 300; }
    local in=${IDLEC[0]} outfd=${IDLEC[1]} cpid=$IDLEC_PID
    IFS= read -r -t 600 line <&"$in" || true
    sleep 1
    after=$(proc_mem "$s")
    n=$(kv sessions "$line")
    echo quit >&"$outfd"
    IFS= read -r -t 120 res <&"$in" || true
    wait "$cpid" 2>/dev/null || true
    if [ -z "$n" ] || [ "$n" = 0 ]; then log "$s: idle sessions failed ($line)"; return 0; fi
    local drss dpss
    drss=$(( $(kv rss_kb "$after") - $(kv rss_kb "$before") ))
    dpss=$(( $(kv pss_kb "$after") - $(kv pss_kb "$before") ))
    R[idlerss,$s]=$(awk -v d="$drss" -v n="$n" 'BEGIN { printf "%.1f", d / n }')
    R[idlepss,$s]=$(awk -v d="$dpss" -v n="$n" 'BEGIN { printf "%.1f", d / n }')
    R[idlen,$s]=$n
    log "$s: $n idle sessions (opened in $(kv secs "$line") s, errors $(kv errors "$line")): processes $(kv procs "$before") -> $(kv procs "$after"), RSS sum +$drss kB, PSS sum +$dpss kB"
}

# spool SERVER USER -> the path of USER's mbox in SERVER's copy
spool() {
    case $1 in
        pop3d|dovecot) echo "${UPDFS:-$W/srv}/$1/spool/$2" ;; popa3d) echo "/var/mail/$2" ;;
    esac
}

# trivial_send KEY [tls]: CPU per 10^9 octets of the trivial sender (the 100 MB mbox sent 10 times
# as it is to a loopback socket; with tls through rustls with the bench certificate)
trivial_send() {
    local key=$1 out res tlsarg=()
    [ -z "${2:-}" ] || tlsarg=(--tls "$CERT" --key "$KEY")
    cat "$W/data/retr.mbox" > /dev/null
    out=$(timeout 300 "$BIN" trivial-send --file "$W/data/retr.mbox" --passes 10 "${tlsarg[@]}" 2> "$W/srv/err.txt") || true
    res=$(grep RESULT <<<"$out" || true)
    if [ -z "$res" ]; then log "trivial sender${2:+ (TLS)} failed: $(tail -1 "$W/srv/err.txt")"; return 0; fi
    R[$key,pop3d]=$(awk -v c="$(kv cpu_ticks "$res")" -v n="$(kv bytes "$res")" -v t="$TICK" \
        'BEGIN { printf "%.3f", c / t / n * 1e9 }')
    log "trivial sender${2:+ (TLS, $(kv tls "$res"))}: $(kv bytes "$res") octets in $(kv secs "$res") s, $(kv cpu_ticks "$res") ticks of CPU = ${R[$key,pop3d]} s/GB"
}

# hash_cost: CPU milliseconds of one crypt(3) call with the bench users' SHA512-CRYPT hash (5000
# rounds), NHASH calls timed by perl (whose crypt is the system's libcrypt, as pop3d's is)
hash_cost() {
    local out
    # shellcheck disable=SC2016
    out=$(perl -e 'my ($h, $p, $n) = @ARGV; my $ok = crypt($p, $h) eq $h ? 1 : 0; my @a = times;
        crypt($p, $h) for 1 .. $n; my @b = times;
        printf "%.3f %d\n", ($b[0] + $b[1] - $a[0] - $a[1]) * 1000 / $n, $ok' "$HASH" "$PASS" "$NHASH") || true
    if [ "${out#* }" != 1 ]; then log "crypt(3) via perl failed or gave another hash: $out"; return 0; fi
    R[hash,pop3d]=${out% *}
    log "one SHA512-CRYPT hash (crypt(3) via perl, $NHASH calls): ${R[hash,pop3d]} ms of CPU"
}

# callgrind: instructions per octet of RETR, counted by valgrind (repeatable where wall-clock and
# ticks are not). pop3d -i serves a scripted session on pipes: login + RETR 1..CGMSGS + QUIT of the
# 100 MB mbox, minus the same session without the RETRs (login and index scan; the index cache
# removed before each), per octet of output; the trivial sender likewise with --stdout: one pass
# of the file minus none.
cg_run() { # cg_run NAME INPUT COMMAND...: sets CGIR (instructions) and CGOUT (octets written)
    local name=$1 input=$2 f=$W/srv/cg/$1.callgrind; shift 2
    rm -f "$f" "$W/srv/cg/state/pbretr.index"
    install -m 666 /dev/null "$f"     # pop3d drops privileges before valgrind writes it
    CGOUT=$(timeout 1200 valgrind --tool=callgrind --vgdb=no --callgrind-out-file="$f" "$@" < "$input" \
        2> "$W/srv/cg/$name.err" | wc -c) || true
    CGIR=$(awk '/^summary:/ { print $2 }' "$f" 2>/dev/null)
    num "$CGIR" || { log "callgrind $name: no summary (see $W/srv/cg/$name.err)"; CGIR=; }
}
callgrind_ipb() {
    if ! command -v valgrind >/dev/null; then
        apt-get install -y -qq --no-install-recommends valgrind >/dev/null 2>&1 || { log "valgrind unavailable: no instruction counts"; return 0; }
    fi
    local d=$W/srv/cg i ir0 out0 ir1 out1
    rm -rf "$d"; mkdir -p "$d/spool" "$d/state"
    cp "$W/data/retr.mbox" "$d/spool/pbretr"
    chown -R nobody:nogroup "$d/spool" "$d/state"; chmod 700 "$d/state"; chmod 600 "$d/spool/pbretr"
    printf '%s\n' '# pop3d.conf for the callgrind workload (generated by bench/run.sh)' 'user = nobody' \
        "users_file = $W/srv/pop3d/users" "mailbox = $d/spool/%u" "state_dir = $d/state" "log = $d/pop3d.log" > "$d/pop3d.conf"
    printf 'USER pbretr\r\nPASS %s\r\n' "$PASS" > "$d/base.in"
    { cat "$d/base.in"; for i in $(seq "$CGMSGS"); do printf 'RETR %d\r\n' "$i"; done; printf 'QUIT\r\n'; } > "$d/retr.in"
    printf 'QUIT\r\n' >> "$d/base.in"
    : > "$d/empty.in"
    cg_run pop3d-base "$d/base.in" "$P3D" -i -f "$d/pop3d.conf"; ir0=$CGIR out0=$CGOUT
    cg_run pop3d-retr "$d/retr.in" "$P3D" -i -f "$d/pop3d.conf"; ir1=$CGIR out1=$CGOUT
    if num "$ir0" && num "$ir1" && [ "$out1" -gt "$out0" ]; then
        R[cgipb,pop3d]=$(awk -v a="$ir0" -v b="$ir1" -v x="$out0" -v y="$out1" 'BEGIN { printf "%.3f", (b - a) / (y - x) }')
        log "callgrind: pop3d -i, RETR 1..$CGMSGS: $ir1 instructions for $out1 octets out; login+QUIT alone: $ir0 for $out0 -> ${R[cgipb,pop3d]} per octet"
    fi
    # one login: USER/PASS/STAT/QUIT of a small mailbox minus QUIT alone (after a session that
    # wrote its index, as in the login-rate runs); one hash: perl's crypt() 10 times minus none
    cp "$W/data/small.mbox" "$d/spool/pb0000"; chown nobody:nogroup "$d/spool/pb0000"; chmod 600 "$d/spool/pb0000"
    printf 'USER pb0000\r\nPASS %s\r\nSTAT\r\nQUIT\r\n' "$PASS" > "$d/login.in"
    printf 'QUIT\r\n' > "$d/quit.in"
    "$P3D" -i -f "$d/pop3d.conf" < "$d/login.in" > /dev/null 2>&1 || true
    cg_run pop3d-quit "$d/quit.in" "$P3D" -i -f "$d/pop3d.conf"; ir0=$CGIR
    cg_run pop3d-login "$d/login.in" "$P3D" -i -f "$d/pop3d.conf"; ir1=$CGIR
    local h0 h1
    # shellcheck disable=SC2016
    cg_run hash-0 "$d/empty.in" perl -e 'crypt($ARGV[1], $ARGV[0]) for 1 .. $ARGV[2]' "$HASH" "$PASS" 0; h0=$CGIR
    # shellcheck disable=SC2016
    cg_run hash-10 "$d/empty.in" perl -e 'crypt($ARGV[1], $ARGV[0]) for 1 .. $ARGV[2]' "$HASH" "$PASS" 10; h1=$CGIR
    if num "$ir0" && num "$ir1" && num "$h0" && num "$h1"; then
        R[cglogin,pop3d]=$(awk -v a="$ir0" -v b="$ir1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
        R[cghash,pop3d]=$(awk -v a="$h0" -v b="$h1" 'BEGIN { printf "%.1f", (b - a) / 10 / 1e6 }')
        log "callgrind: pop3d -i login+STAT+QUIT $ir1, QUIT alone $ir0 -> ${R[cglogin,pop3d]} M instructions per login; perl crypt() x10 $h1, x0 $h0 -> ${R[cghash,pop3d]} M per hash"
    fi
    cg_run trivial-0 "$d/empty.in" "$BIN" trivial-send --file "$d/spool/pbretr" --passes 0 --stdout 1; ir0=$CGIR out0=$CGOUT
    cg_run trivial-1 "$d/empty.in" "$BIN" trivial-send --file "$d/spool/pbretr" --passes 1 --stdout 1; ir1=$CGIR out1=$CGOUT
    if num "$ir0" && num "$ir1" && [ "$out1" -gt "$out0" ]; then
        R[cgipb,trivial]=$(awk -v a="$ir0" -v b="$ir1" -v x="$out0" -v y="$out1" 'BEGIN { printf "%.3f", (b - a) / (y - x) }')
        log "callgrind: trivial sender, 1 pass: $ir1 instructions for $out1 octets; 0 passes: $ir0 -> ${R[cgipb,trivial]} per octet"
    fi
}

# fresh_retr SERVER: a fresh copy of the 100 MB mbox as pbretr's mailbox (new inode), with no
# index or state of an earlier session, written back to disk before the session
fresh_retr() {
    local f
    f=$(spool "$1" pbretr)
    rm -f "$f"
    case $1 in
        pop3d) rm -f "${UPDFS:-$W/srv}"/pop3d/state/pbretr.{index,uids} ;;
        dovecot) rm -rf "${UPDFS:-$W/srv}/dovecot/index/pbretr" ;;
    esac
    cp "$W/data/retr.mbox" "$f"
    if [ "$1" = popa3d ]; then chown pbretr:mail "$f"; else chown nobody:nogroup "$f"; fi
    chmod 600 "$f"
    sync "$f"
}

update_cost() { # update_cost SERVER WHICH: time of QUIT after DELE of first / every tenth / all messages
    local s=$1 which=$2 out res
    fresh_retr "$s"
    out=$(timeout 900 "$BIN" dele --addr "${ADDR[$s]}" --user pbretr --pass "$PASS" --which "$which" 2> "$W/srv/err.txt") || true
    res=$(grep RESULT <<<"$out" || true)
    if [ -z "$res" ] || [ "$(kv error "$res")" = 1 ]; then
        log "$s: UPDATE ($which) failed: $(tail -1 "$W/srv/err.txt")"; return 0
    fi
    R[upd$which,$s]=$(kv quit_closed_ms "$res")
    [ "$(kv left_ok "$res")" = 1 ] || { R[upd$which,$s]="wrong"; log "$s: UPDATE ($which) left $(kv left "$res") messages"; }
    log "$s: QUIT after DELE of $(kv deleted "$res") of $(kv messages "$res") messages (100 MB mbox): +OK after $(kv quit_ok_ms "$res") ms, closed after $(kv quit_closed_ms "$res") ms; $(kv left "$res") left"
}

# ------------------------------------------------------------------ phase 9: UPDATE on loop filesystems
# updfs_mount FS: a fresh FS filesystem (btrfs, xfs with reflink, ext4) in a 1 GB loop file, mounted on
# $W/fs/FS with the directories pop3d and Dovecot keep mailboxes, state and indexes in; sets UPDFS, UPDFS_DEV
updfs_mount() {
    local fs=$1 img=$W/fs/$1.img mnt=$W/fs/$1
    mkdir -p "$mnt"
    ! mountpoint -q "$mnt" || umount "$mnt"
    # allocated up front and made without discard (which would punch the image's blocks out again), as a disk
    # is: the host then allocates nothing during the measured flushes
    rm -f "$img"; fallocate -l 1G "$img" 2>/dev/null || truncate -s 1G "$img"
    case $fs in
        btrfs) mkfs.btrfs -q -f -K "$img" ;;
        xfs) mkfs.xfs -q -f -K -m reflink=1 "$img" ;;
        *) "mkfs.$fs" -q -F -E nodiscard "$img" ;;
    esac >"$W/srv/err.txt" 2>&1 || { log "mkfs.$fs failed, no $fs figures: $(tail -1 "$W/srv/err.txt")"; return 1; }
    if ! mount -t "$fs" -o loop "$img" "$mnt" 2>"$W/srv/err.txt"; then
        log "cannot mount a $fs loop file here, no $fs figures: $(cat "$W/srv/err.txt")"; rm -f "$img"; return 1
    fi
    MOUNTS+=("$mnt")
    mkdir -p "$mnt"/pop3d/{spool,state} "$mnt"/dovecot/{spool,index,home}
    chown -R nobody:nogroup "$mnt"/pop3d "$mnt"/dovecot
    chmod 700 "$mnt/pop3d/state"
    UPDFS=$mnt
    UPDFS_DEV=$(basename "$(findmnt -n -o SOURCE "$mnt")")
}
# dev_written DEV: octets written to block device DEV since it was set up (/sys/block/DEV/stat, 512-octet sectors)
dev_written() { echo $(( $(awk '{ print $7 }' "/sys/block/$1/stat") * 512 )); }

# updfs_accounts: pop3d's and Dovecot's users files for phase 9 run on its own (BENCH_PHASES=updatefs: no
# setup_mailboxes before it)
updfs_accounts() {
    [ ! -f "$W/srv/pop3d/users" ] || [ ! -f "$W/srv/dovecot/users" ] || return 0
    mkdir -p "$W/srv/pop3d" "$W/srv/dovecot"/{run,state,home,index}
    chown nobody:nogroup "$W/srv/dovecot"/{home,index}
    printf '%s\n' "pb0000:$HASH" "pbretr:$HASH" > "$W/srv/pop3d/users"
    chown root:nogroup "$W/srv/pop3d/users"; chmod 640 "$W/srv/pop3d/users"
    printf '%s\n' "pb0000:{SHA512-CRYPT}$HASH" "pbretr:{SHA512-CRYPT}$HASH" > "$W/srv/dovecot/users"
    chmod 644 "$W/srv/dovecot/users"
}

# updfs_cost SERVER FS [warm-up]: QUIT after DELE 1 of a fresh copy of the 100 MB mbox on the FS loop filesystem: the time
# (as update_cost) and the octets its device was written between a sync before the session and one after it
# (all the UPDATE wrote: data, the filesystem's metadata, and the pages Dovecot leaves unflushed); for pop3d also
# its daemon's /proc/PID/io write_bytes (page-cache folios dirtied, counted whole). Best time of the runs kept,
# with the largest byte count; a warm-up run is logged, not counted.
updfs_cost() {
    local s=$1 fs=$2 warm=${3:-} out res d0 d1 w0='' w='' ms bytes
    fresh_retr "$s"
    sync -f "$UPDFS"
    d0=$(dev_written "$UPDFS_DEV")
    [ "$s" != pop3d ] || w0=$(awk '/^write_bytes/ { print $2 }' "/proc/${PID[pop3d]}/io")
    out=$(timeout 900 "$BIN" dele --addr "${ADDR[$s]}" --user pbretr --pass "$PASS" --which first 2> "$W/srv/err.txt") || true
    sync -f "$UPDFS"
    d1=$(dev_written "$UPDFS_DEV")
    [ -z "$w0" ] || w=$(( $(awk '/^write_bytes/ { print $2 }' "/proc/${PID[pop3d]}/io") - w0 ))
    res=$(grep RESULT <<<"$out" || true)
    if [ -z "$res" ] || [ "$(kv error "$res")" = 1 ] || [ "$(kv left_ok "$res")" != 1 ]; then
        log "$s on $fs: UPDATE failed: $(tail -1 "$W/srv/err.txt") $res"; R[updfs$fs,$s]=wrong; return 0
    fi
    ms=$(kv quit_closed_ms "$res") bytes=$((d1 - d0))
    if [ -n "$warm" ]; then log "$s on $fs: warm-up UPDATE (not counted): closed after $ms ms, $bytes octets written"; return 0; fi
    if [ "${R[updfs$fs,$s]:-}" != wrong ] && { ! num "${R[updfs$fs,$s]:-}" \
        || awk -v a="$ms" -v b="${R[updfs$fs,$s]}" 'BEGIN { exit !(a < b) }'; }; then R[updfs$fs,$s]=$ms; fi
    [ "${R[updfsbytes$fs,$s]:-0}" -ge "$bytes" ] || R[updfsbytes$fs,$s]=$bytes
    [ -z "$w" ] || [ "${R[updfsw$fs,$s]:-0}" -ge "$w" ] || R[updfsw$fs,$s]=$w
    log "$s on $fs: QUIT after DELE 1 of the 100 MB mbox: +OK after $(kv quit_ok_ms "$res") ms, closed after $ms ms; the filesystem wrote $bytes octets, $(awk -v a="$bytes" -v b="$UPDFS_MOVED" 'BEGIN { printf "%.3f", a / b }')x the $UPDFS_MOVED moved${w:+ (write_bytes of the pop3d process: $w)}"
}

# update_fs: phase 9, for each filesystem of BENCH_UPDFS: pop3d and Dovecot restarted with their mailboxes and state
# on it, UPDFS_RUNS runs each, taking turns
update_fs() {
    local fs s servers='' second
    for s in $SERVERS; do [ "$s" = popa3d ] || servers+=" $s"; done
    [ -n "$servers" ] || return 0
    updfs_accounts
    # DELE 1 moves everything from message 2's From line on
    second=$(grep -b -m 2 '^From ' "$W/data/retr.mbox" | tail -1 | cut -d: -f1)
    UPDFS_MOVED=$(( $(stat -c %s "$W/data/retr.mbox") - second ))
    for s in $servers; do R[updfsmoved,$s]=$UPDFS_MOVED; done
    for fs in $UPDFS_LIST; do
        updfs_mount "$fs" || continue
        for s in $servers; do
            start_server "$s"
            check_login "$s" || die "$s: a test login failed on the $fs filesystem (see above)"
        done
        # the first UPDATE on a fresh filesystem is slower for both servers (pop3d up to 6x here, its flushes
        # meeting what the new filesystem still does in the background): one each, not counted
        for s in $servers; do updfs_cost "$s" "$fs" warm-up; done
        for _ in $(seq "$UPDFS_RUNS"); do for s in $servers; do updfs_cost "$s" "$fs"; done; done
        for s in $servers; do stop_server "$s"; done
        umount "$UPDFS" && rm -f "$W/fs/$fs.img"
        UPDFS=
    done
}

# maildir_copy SERVER: the generated Maildir as pbbig's, read once so it is in the page cache
maildir_copy() {
    local dest=$W/srv/$1/maildir/pbbig
    rm -rf "$W/srv/$1/maildir" "$W/srv/$1/index-md" "$W/srv/$1/state-md"
    mkdir -p "$W/srv/$1/maildir" "$W/srv/$1/index-md" "$W/srv/$1/state-md"
    cp -a "$W/data/maildir" "$dest"
    chown -R nobody:nogroup "$W/srv/$1/maildir" "$W/srv/$1/index-md" "$W/srv/$1/state-md"
    chmod 700 "$W/srv/$1/state-md"
    find "$dest" -type f -print0 | xargs -0 cat > /dev/null
}

# issue 18's phases: busy sites and floods
# shellcheck source=bench/busy.sh
. "$HERE/busy.sh"

# ------------------------------------------------------------------ run
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD0%% *}" 'BEGIN { exit !(l > 1.0) }' \
    && log "warning: load average is $LOAD0 before the run: other work on this machine will skew the figures"
setup_packages
build_tools
make_cert
gen_data
setup_users
# Phases 1-8 share the servers started here on their copies of every mailbox; phase 9 and issue 18's need
# neither.
if want stat || want login || want retr || want callgrind || want tls || want update || want idle || want maildir; then
setup_mailboxes
for s in $SERVERS; do
    start_server "$s"
    check_login "$s" || die "$s: a test login failed (see above)"
done
fi
MARK0=$(cpu_mark)

if want stat; then
log "1/8: STAT on a 1 GB / 100,000-message mbox: first session (cold), next session, and after 100 new messages"
for s in $SERVERS; do
    # cold: the first session ever on the server's copy, no index; the file read once before,
    # so it is in the page cache (the page cache is not dropped: that would time the disk)
    cat "$(spool "$s" pbbig)" > /dev/null
    [ "$s" != pop3d ] || rm -f "$W/srv/pop3d/state/pbbig.index"
    bigstat "$s" cold; bigstat "$s" warm
done
for s in $SERVERS; do cat "$W/data/append.mbox" >> "$(spool "$s" pbbig)"; done
for s in $SERVERS; do bigstat "$s" append; done
fi

if want login; then
log "2/8: login+STAT+QUIT sessions per second (${SECS} s or $MAXLOGIN sessions per figure), and one crypt(3) hash"
for c in 8 64; do for s in $SERVERS; do login_rate "$s" "$c"; done; done
hash_cost
fi

if want retr; then
log "3/8: RETR of every message of a 100 MB / 2,000-message mbox, and the trivial sender on that file"
for s in $SERVERS; do retr_rate "$s" 1; retr_rate "$s" 8; done
trivial_send trivcpu
fi

if want callgrind; then
log "4/8: instructions per octet of RETR under callgrind (pop3d -i on pipes, $CGMSGS messages; the trivial sender)"
[[ " $SERVERS " != *" pop3d "* ]] || callgrind_ipb
fi

TLS_SERVERS=
for s in $SERVERS; do [ "$s" = popa3d ] || TLS_SERVERS+=" $s"; done
if [ -n "$TLS_SERVERS" ] && want tls; then
    log "5/8: POP3S (implicit TLS; servers restarted with it)"
    TLS=1
    for s in $TLS_SERVERS; do
        stop_server "$s"; start_server "$s"
        check_login "$s" tls || die "$s: a test login over POP3S failed (see above)"
    done
    TMARK0=$(cpu_mark)
    # best of $TLSRUNS runs, the servers taking turns so that other load hits both alike
    for c in 8 64; do
        for _ in $(seq "$TLSRUNS"); do
            for s in $TLS_SERVERS; do login_rate "$s" "$c" tls; done
        done
    done
    for s in $TLS_SERVERS; do retr_rate "$s" 1 tls; retr_rate "$s" 8 tls; done
    trivial_send trivtlscpu tls
    TLSOTHER=$(other_cpu "$TMARK0" "$(cpu_mark)")
    log "POP3S phase: other work on this machine used $TLSOTHER% of the $(nproc) CPUs meanwhile"
    TLS=0
    for s in $TLS_SERVERS; do stop_server "$s"; start_server "$s"; done
fi

if want update; then
log "6/8: UPDATE: QUIT after DELE of message 1, of every tenth, of all 2,000 (a fresh copy of the 100 MB mbox each time)"
for which in first tenth all; do for s in $SERVERS; do update_cost "$s" "$which"; done; done
fi

if want idle; then
log "7/8: memory with $NIDLE idle logged-in sessions (servers restarted fresh)"
for s in $SERVERS; do stop_server "$s"; start_server "$s"; idle_rss "$s"; stop_server "$s"; done
fi
for s in $SERVERS; do stop_server "$s"; done

MD_SERVERS=
for s in $SERVERS; do [ "$s" = popa3d ] || MD_SERVERS+=" $s"; done
if [ -n "$MD_SERVERS" ] && want maildir; then
    log "8/8: STAT on a $MDMSGS-message Maildir, first session and next (pop3d and Dovecot restarted on Maildirs)"
    STORE=maildir
    for s in $MD_SERVERS; do maildir_copy "$s"; done
    sleep 2    # the directories' mtimes settle (pop3d trusts a listing of settled directories only)
    for s in $MD_SERVERS; do
        start_server "$s"
        bigstat "$s" mdcold "$MDMSGS-message Maildir"; bigstat "$s" mdwarm "$MDMSGS-message Maildir"
        stop_server "$s"
    done
    STORE=mbox
fi
if want updatefs; then
    log "9: UPDATE on btrfs, XFS (reflink) and ext4 loop filesystems ($UPDFS_LIST): QUIT after DELE 1 of the 100 MB mbox, pop3d and Dovecot on the same filesystem, time and octets written"
    update_fs
fi
if want busy || want household || want spacing || want flood; then
    busy_accounts
    if want busy; then
        log "issue 18, busy: login+STAT+QUIT from one address, 8 and 64 clients (${BUSY_SECS} s each), users file and system accounts"
        phase_busy
    fi
    if want household; then
        log "issue 18, household: one address, an old password every 2 s beside a good login every 3 s (${NAT_SECS} s per server)"
        phase_household
    fi
    if want spacing; then
        log "issue 18, spacing: 12 wrong passwords for one account from 12 addresses, by USER/PASS, AUTH PLAIN, LOGIN, SCRAM-SHA-256"
        phase_spacing
    fi
    if want flood; then
        log "issue 18, flood: real clients under $FLOOD_CONNS silent, dripping and TLS-stalled connections; a dripped ClientHello; distributed guessing; log volume"
        phase_flood
    fi
fi
ALLOTHER=$(other_cpu "$MARK0" "$(cpu_mark)")
log "other work on this machine used $ALLOTHER% of the $(nproc) CPUs during the measurements"

# binary sizes
if want size; then
SMALL=$ROOT/target/release-small/pop3d
if [[ " $SERVERS " == *" pop3d "* ]] && [ ! -f "$SMALL" ]; then
    log "target/release-small/pop3d missing: cargo build --profile release-small"
    (cd "$ROOT" && cargo build --profile release-small -q) || log "release-small build failed"
fi
[ -f "$SMALL" ] && R[size,pop3d]=$(stat -c %s "$SMALL")
R[size,popa3d]=$(stat -c %s "$PA/usr/sbin/popa3d")
R[size,dovecot]=$(du -cb "$DV/usr/sbin/dovecot" "$DV"/usr/lib/dovecot/{pop3,pop3-login,auth,config,log,anvil} \
    "$DV"/usr/lib/dovecot/libdovecot{,-storage,-login}.so.0.0.0 | tail -1 | cut -f1)
fi

# ------------------------------------------------------------------ results and the report
# Every figure (R[metric,server] as `metric,server=value`) and the facts of the run go to a file that
# bench/report.py turns into the table and notes, now or later: python3 bench/report.py FILE.
RESULTS=${BENCH_RESULTS:-$W/results-$(date -u +%Y%m%dT%H%M%SZ).txt}
{
    echo "# pop3d benchmark figures (bench/run.sh); the report: python3 bench/report.py THIS-FILE"
    echo "date=$(date -u +%FT%TZ)"
    echo "nproc=$(nproc)"
    echo "kernel=$(uname -r)"
    echo "load0=$LOAD0"
    echo "allother=$ALLOTHER"
    [ -z "${TLSOTHER:-}" ] || echo "tlsother=$TLSOTHER"
    echo "dovecot_version=$(LD_LIBRARY_PATH=$DV/usr/lib/dovecot "$DV/usr/sbin/dovecot" --version 2>/dev/null | head -1)"
    echo "popa3d_version=$(dpkg-deb -f "$W"/pkgs/popa3d_*.deb Version)"
    printf '%s\n' "secs=$SECS" "maxlogin=$MAXLOGIN" "nhash=$NHASH" "cgmsgs=$CGMSGS" "tlsruns=$TLSRUNS" \
        "nidle=$NIDLE" "mdmsgs=$MDMSGS" "mdbytes=$MDBYTES" "updfs_list=${UPDFS_LIST:-}" "updfs_runs=${UPDFS_RUNS:-}"
    busy_facts
    for k in "${!R[@]}"; do printf '%s=%s\n' "$k" "${R[$k]}"; done | sort
} > "$RESULTS"
python3 "$HERE/report.py" "$RESULTS"
log "figures saved in $RESULTS (python3 bench/report.py prints the report again from it)"
log "done in $(( $(date +%s) - T0 )) s"
