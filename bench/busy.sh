# busy.sh: issue 18's phases of `make bench` (busy, household, spacing, flood): busy sites and floods, pop3d beside Dovecot and popa3d; sourced by bench/run.sh.
# shellcheck shell=bash
#
# These functions use run.sh's variables and helpers (W, BIN, P3D, PASS, HASH, CERT, KEY, R, ADDR, PID,
# start_server, stop_server, log, kv, num ...). pop3d runs here as its own instances with the default
# admission limits (the rest of the bench raises max_sessions for its 1,000 idle sessions): one with a
# users file (plain and POP3S listeners), one with system accounts (accounts = system over the bench's
# system users, started as root, user = mail, mailboxes NAME:mail 0660 in a root:mail 2775 spool: the
# Debian layout). Dovecot and popa3d are run.sh's own (start_server). Every client connects from a
# loopback address of its own (127.0.18.x, 127.0.4x.x, 127.0.5x.x ...), so no scenario inherits another's
# penalties; pop3d is restarted between scenarios for the same reason.
# Environment (besides run.sh's):
#   BENCH_BUSY_SECS=$BENCH_SECS   seconds per busy-address login-rate figure
#   BENCH_NAT_SECS=30             length of the NAT household run, per server
#   BENCH_FLOOD_CONNS=1000 BENCH_FLOOD_RUNS=10 BENCH_FLOOD_SECS=60   connections held; real clients per
#                                 address; the longest a flood runs
#   BENCH_FLOOD_REOPEN_MS=200     how long a holder whose connection the server closed waits to open it again
#                                 (the interop test's pace: the flood holds its connections; one dripping flood
#                                 is also run re-opened at once, a connection-rate flood, for information)
#   BENCH_GUESS_SECS=30           window of the distributed guessing
#   BENCH_LOGFLOOD_SECS=10        length of the connection flood whose log volume is measured
#   BENCH_DRIP_SECS=30            the longest a dripped ClientHello is kept up

BUSY_SECS=${BENCH_BUSY_SECS:-$SECS}
NAT_SECS=${BENCH_NAT_SECS:-30}
FLOOD_CONNS=${BENCH_FLOOD_CONNS:-1000}
FLOOD_RUNS=${BENCH_FLOOD_RUNS:-10}
FLOOD_SECS=${BENCH_FLOOD_SECS:-60}
FLOOD_REOPEN_MS=${BENCH_FLOOD_REOPEN_MS:-200}
GUESS_SECS=${BENCH_GUESS_SECS:-30}
LOGFLOOD_SECS=${BENCH_LOGFLOOD_SECS:-10}
DRIP_SECS=${BENCH_DRIP_SECS:-30}
BUSY_ACCOUNTS=200       # pb0000..pb0199 get a mailbox in these phases' spools
BUSY_SYS_ACCOUNTS=64    # ... and pb0000..pb0063 in the system-accounts spool
SCRAM_USERS="pbscram0 pbscram1 pbscram2 pbscram3"   # users-file accounts with SCRAM keys (pop3d -P)
BUSY_PID='' BUSY_ADDR='' BUSY_TADDR=''   # the running pop3d instance of these phases
declare -A R ADDR TADDR   # run.sh's (declared there before this file is sourced; kept as they are)

# busy_accounts: the mailboxes these phases use, where setup_mailboxes has not made them (a run of these
# phases alone): small mailboxes for pb0000..pb0199 in Dovecot's spool and /var/mail (popa3d), Dovecot's
# users file; and pop3d's two layouts, made afresh
busy_accounts() {
    local u d=$W/srv/dovecot b=$W/srv/busy s=$W/srv/busysys
    # max_sessions (default 200) + SESSION_THREAD_SPARE (32) + 8 for the daemon's own (main, accept loops,
    # reaper...): the bound pop3d's threads must stay within
    R[busythrbound,pop3d]=$((200 + 32 + 8))
    mkdir -p "$d"/{run,state,home,index,spool}
    if [ ! -f "$d/users" ]; then
        for u in $(all_users); do echo "$u:{SHA512-CRYPT}$HASH"; done > "$d/users"
        chmod 644 "$d/users"
    fi
    for u in $(seq -f 'pb%04g' 0 $((BUSY_ACCOUNTS - 1))); do
        [ -f "$d/spool/$u" ] || cp "$W/data/small.mbox" "$d/spool/$u"
        if [ ! -f "/var/mail/$u" ]; then
            cp "$W/data/small.mbox" "/var/mail/$u"; chown "$u:mail" "/var/mail/$u"; chmod 600 "/var/mail/$u"
        fi
    done
    chown -R nobody:nogroup "$d/spool" "$d/home" "$d/index"; chmod 600 "$d"/spool/pb*
    # pop3d, users file: every bench account, and the SCRAM-keyed ones of the spacing phase
    rm -rf "$b"; mkdir -p "$b/spool" "$b/state"
    for u in $(seq -f 'pb%04g' 0 $((BUSY_ACCOUNTS - 1))); do cp "$W/data/small.mbox" "$b/spool/$u"; done
    chown -R nobody:nogroup "$b/spool" "$b/state"; chmod 600 "$b"/spool/*; chmod 700 "$b/state"
    {
        for u in $(all_users); do echo "$u:$HASH"; done
        for u in $SCRAM_USERS; do echo "$PASS" | "$P3D" -P "$u" || die "pop3d -P $u failed"; done
    } > "$b/users"
    chown root:nogroup "$b/users"; chmod 640 "$b/users"
    # pop3d, system accounts: the Debian layout
    rm -rf "$s"; mkdir -p "$s/spool" "$s/state"
    for u in $(seq -f 'pb%04g' 0 $((BUSY_SYS_ACCOUNTS - 1))); do
        cp "$W/data/small.mbox" "$s/spool/$u"; chown "$u:mail" "$s/spool/$u"; chmod 660 "$s/spool/$u"
    done
    chown root:mail "$s/spool"; chmod 2775 "$s/spool"
    chown mail:mail "$s/state"; chmod 700 "$s/state"
}

# busy_start MODE [KEY=VALUE...]: pop3d with MODE users (plain and POP3S listeners) or system accounts,
# the default limits, and KEY=VALUE lines added; sets BUSY_PID, BUSY_ADDR, BUSY_TADDR, BUSY_LOG
busy_start() {
    local mode=$1 d=$W/srv/busy; shift
    busy_stop
    [ "$mode" = users ] || d=$W/srv/busysys
    rm -rf "${d:?}/state"/*   # no penalty, known network or index of an earlier instance
    {
        echo "# pop3d.conf for bench/busy.sh ($mode): the default limits"
        echo "listen = 127.0.0.1:0, 127.0.0.1:0 tls"
        echo "tls_cert = $CERT"; echo "tls_key = $KEY"
        echo "mailbox = $d/spool/%u"; echo "state_dir = $d/state"; echo "log = stderr"
        if [ "$mode" = users ]; then
            echo "user = nobody"; echo "users_file = $d/users"
        else
            echo "user = mail"; echo "accounts = system"
        fi
        printf '%s\n' "$@" | sed 's/=/ = /'
    } > "$d/pop3d.conf"
    BUSY_STARTS=$((${BUSY_STARTS:-0} + 1))
    BUSY_LOG=$d/pop3d.$BUSY_STARTS.log
    "$P3D" -f "$d/pop3d.conf" 2>"$BUSY_LOG" &
    BUSY_PID=$!; PIDS+=("$!")
    BUSY_ADDR='' BUSY_TADDR=''
    for _ in $(seq 100); do
        BUSY_ADDR=$(grep -v '(TLS)' "$BUSY_LOG" | grep -oE 'listening on [^ ]+' | head -1 | cut -d' ' -f3) || true
        BUSY_TADDR=$(grep '(TLS)$' "$BUSY_LOG" | grep -oE 'listening on [^ ]+' | head -1 | cut -d' ' -f3) || true
        [ -n "$BUSY_ADDR" ] && [ -n "$BUSY_TADDR" ] && break
        kill -0 "$BUSY_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$BUSY_ADDR" ] || [ -z "$BUSY_TADDR" ]; then cat "$BUSY_LOG" >&2; die "pop3d ($mode) did not start"; fi
    log "pop3d (${mode/users/users-file} accounts, default limits${1:+, $*}) listening on $BUSY_ADDR and $BUSY_TADDR (POP3S) (pid $BUSY_PID)"
}
busy_stop() {
    [ -n "$BUSY_PID" ] || return 0
    kill -TERM "$BUSY_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BUSY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BUSY_PID" 2>/dev/null || true
    wait "$BUSY_PID" 2>/dev/null || true
    BUSY_PID=
}

# bench_run TIMEOUT MODE ARGS...: `pop3bench MODE ARGS` bounded by TIMEOUT seconds; its RESULT line (its
# stderr in $W/srv/err.txt)
bench_run() {
    local t=$1; shift
    timeout "$t" "$BIN" "$@" 2> "$W/srv/err.txt" | grep RESULT || true
}

# where SERVER -> the plaintext address of SERVER in these phases (pop3d: this file's instance)
where() { if [ "$1" = pop3d ]; then echo "$BUSY_ADDR"; else echo "${ADDR[$1]}"; fi; }

# ------------------------------------------------------------------ busy: 64 clients from one address
# busy_rate SERVER MODE CONC: login+STAT+QUIT from 127.0.18.1 (MODE users) or .2 (system), CONC clients;
# for pop3d also its peak threads and RSS (VmHWM, reset first) during the run
busy_rate() {
    local s=$1 mode=$2 c=$3 res key watch=() from=127.0.18.1
    key=busy${mode:0:1}$c
    [ "$mode" = users ] || from=127.0.18.2
    if [ "$s" = pop3d ]; then
        echo 5 > "/proc/$BUSY_PID/clear_refs" || log "cannot reset pop3d's VmHWM"
        watch=(--watch "$BUSY_PID")
    fi
    res=$(bench_run $((BUSY_SECS + 90)) logins --addr "$(where "$s")" --prefix pb --users "$NUSERS" --pass "$PASS" \
        --conc "$c" --secs "$BUSY_SECS" --max "$MAXLOGIN" --from "$from" "${watch[@]}")
    R[$key,$s]=$(kv rate "$res")
    if [ "$c" = 64 ]; then
        R[${key}err,$s]=$(kv errors "$res")
        R[${key}pct,$s]=$(kv failed_pct "$res")
    fi
    local extra=''
    if [ "$s" = pop3d ] && [ "$c" = 64 ]; then
        R[${key}thr,$s]=$(kv peak_threads "$res")
        R[${key}rss,$s]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$BUSY_PID/status")
        extra="; pop3d: peak $(kv peak_threads "$res") threads, peak RSS ${R[${key}rss,$s]} kB"
    fi
    log "$s (${mode/users/users-file} accounts): $c clients from $from: $(kv sessions "$res") sessions in $(kv secs "$res") s = $(kv rate "$res")/s, $(kv errors "$res") failed ($(kv failed_pct "$res")%; p50 $(kv p50_ms "$res") ms, p99 $(kv p99_ms "$res") ms, max $(kv max_ms "$res") ms)$extra"
    [ "$(kv errors "$res")" = 0 ] || sed 's/^/    /' "$W/srv/err.txt" >&2
}

phase_busy() {
    local s c
    busy_start users
    for c in 8 64; do busy_rate pop3d users "$c"; done
    busy_start system
    for c in 8 64; do busy_rate pop3d system "$c"; done
    busy_stop
    for s in $SERVERS; do
        [ "$s" != pop3d ] || continue
        start_server "$s"
        for c in 8 64; do
            if [ "$s" = popa3d ]; then busy_rate "$s" system "$c"; else busy_rate "$s" users "$c"; fi
        done
        stop_server "$s"
    done
}

# ------------------------------------------------------------------ household: one NAT, a wrong password beside
phase_household() {
    local s res n=10
    for s in $SERVERS; do
        n=$((n + 1))
        if [ "$s" = pop3d ]; then busy_start users; else start_server "$s"; fi
        res=$(bench_run $((NAT_SECS + 120)) household --addr "$(where "$s")" --from "127.0.18.$n" \
            --good pb0100 --bad pb0101 --pass "$PASS" --secs "$NAT_SECS")
        if [ -z "$res" ]; then log "$s: household failed: $(tail -1 "$W/srv/err.txt")"; else
            R[natp50,$s]=$(kv good_p50_ms "$res"); R[natmax,$s]=$(kv good_max_ms "$res")
            R[natfail,$s]=$(kv good_failed "$res")
            log "$s: NAT household (127.0.18.$n, $NAT_SECS s): good logins $(kv good_logins "$res"), answered in p50 $(kv good_p50_ms "$res") ms, max $(kv good_max_ms "$res") ms, $(kv good_failed "$res") failed; the old password tried $(kv bad_tries "$res") times, $(kv bad_refused "$res") refused"
        fi
        if [ "$s" = pop3d ]; then busy_stop; else stop_server "$s"; fi
    done
}

# ------------------------------------------------------------------ spacing: wrong passwords by each mechanism
# spacing_run SERVER MECH USER NET: 12 wrong passwords for USER from NET.1 .. NET.12, in the background;
# its RESULT line goes to $W/srv/spacing-SERVER-MECH
SPACING_PIDS=()
spacing_run() {
    timeout 300 "$BIN" spacing --addr "$(where "$1")" --mech "$2" --user "$3" --from-net "$4" --count 12 \
        > "$W/srv/spacing-$1-$2" 2> "$W/srv/spacing-$1-$2.err" &
    SPACING_PIDS+=("$!")
}
phase_spacing() {
    local s m res i mechs
    for s in $SERVERS; do
        [ "$s" != popa3d ] || continue   # popa3d has no SASL
        rm -f "$W"/srv/spacing-"$s"-*
        i=0 SPACING_PIDS=()
        if [ "$s" = pop3d ]; then
            busy_start users
            # one SCRAM-keyed account and twelve addresses of its own per mechanism (nothing shared: the four
            # run at once)
            mechs="user plain login scram"
            for m in $mechs; do spacing_run "$s" "$m" "pbscram$i" "127.0.4$((i + 1))"; i=$((i + 1)); done
        else
            start_server "$s"
            mechs="user plain login"   # the bench's Dovecot has SHA512-CRYPT hashes only: no SCRAM
            for m in $mechs; do spacing_run "$s" "$m" "pb011$i" "127.0.4$((i + 5))"; i=$((i + 1)); done
        fi
        for i in "${SPACING_PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
        for m in $mechs; do
            res=$(grep RESULT "$W/srv/spacing-$s-$m" || true)
            if [ -z "$res" ] || [ "$(kv error "$res")" = 1 ]; then
                log "$s: spacing $m failed: $(tail -1 "$W/srv/spacing-$s-$m.err")"; continue
            fi
            R[span$m,$s]=$(kv span_s "$res")
            log "$s: 12 wrong passwords by $m for one account from 12 addresses: $(kv auth_refusals "$res") [AUTH] refusals, answers $(kv first_s "$res") s to $(kv last_s "$res") s (span $(kv span_s "$res") s; gaps $(kv gaps "$res"))"
        done
        if [ "$s" = pop3d ]; then busy_stop; else stop_server "$s"; fi
    done
}

# ------------------------------------------------------------------ flood: nothing given up
# flood_run SERVER KIND N: FLOOD_CONNS connections of KIND (silent, drip, tls) from N addresses of 127.0.50
# (N = 1) or 127.0.51, re-opened as fast as the server closes them, while a real client logs in, RETRs
# message 1 and QUITs from a clean address (127.0.19.1) and from the flood's first address, FLOOD_RUNS
# times each
flood_run() {
    local s=$1 kind=$2 n=$3 net=127.0.50 res to watch=()
    [ "$n" = 1 ] || net=127.0.51
    to=$(where "$s")
    [ "$s" != pop3d ] || watch=(--watch "$BUSY_PID")
    if [ "$kind" = tls ]; then
        if [ "$s" = pop3d ]; then to=$BUSY_TADDR; else to=${TADDR[$s]}; fi
    fi
    # $4 (reopen ms): how long a closed holder waits to come back; `at once` rows are keyed flnow...
    local reopen=${4:-$FLOOD_REOPEN_MS} key=fl
    [ "$reopen" != 0 ] || key=flnow
    res=$(bench_run $((FLOOD_SECS + 60)) flood --addr "$(where "$s")" --flood-addr "$to" --kind "$kind" \
        --conns "$FLOOD_CONNS" --from-net "$net" --addresses "$n" --real "127.0.19.1,$net.1" --user pb0130 \
        --pass "$PASS" --runs "$FLOOD_RUNS" --secs "$FLOOD_SECS" --reopen-ms "$reopen" "${watch[@]}")
    if [ -z "$res" ]; then log "$s: $kind flood from $n addresses failed: $(tail -1 "$W/srv/err.txt")"; return 0; fi
    R[$key$kind${n}clean,$s]=$(kv real0_max_ms "$res")
    R[$key$kind${n}own,$s]=$(kv real1_max_ms "$res")
    R[$key$kind${n}fail,$s]=$(kv failures "$res")
    [ "$s" != pop3d ] || R[$key$kind${n}thr,$s]=$(kv peak_threads "$res")
    log "$s: $FLOOD_CONNS $kind connections from $n address(es) ($(kv held_at_start "$res") connected and $(kv greeted_at_start "$res") greeted when the clients began, at least $(kv held_min "$res") connected during; re-opened $(kv reopen_rate "$res")/s): login+RETR+QUIT from a clean address p50 $(kv real0_p50_ms "$res") ms, max $(kv real0_max_ms "$res") ms ($(kv real0_over_100ms "$res") of $(kv real0_n "$res") over 100 ms; TCP connect up to $(kv real0_connect_max_ms "$res") ms); from the flood's address p50 $(kv real1_p50_ms "$res") ms, max $(kv real1_max_ms "$res") ms ($(kv real1_over_100ms "$res") of $(kv real1_n "$res") over 100 ms; connect up to $(kv real1_connect_max_ms "$res") ms); $(kv failures "$res") failed${watch:+; pop3d: peak $(kv peak_threads "$res") threads}"
    [ "$(kv failures "$res")" = 0 ] || sed 's/^/    /' "$W/srv/err.txt" >&2
    sleep 1   # the server's closed sessions end (the next scenario starts from an idle server)
}

# guess_run SERVER NET: distributed guessing at one account (pb0120), a new address of NET per guess
guess_run() {
    local res
    res=$(bench_run $((GUESS_SECS + 60)) guess --addr "$(where "$1")" --user pb0120 --from-net "$2" --threads 8 \
        --secs "$GUESS_SECS")
    R[guessrate,$1]=$(kv rate "$res")
    log "$1: distributed guessing at one account (8 threads, a new address per guess, $GUESS_SECS s): $(kv guesses "$res") answered = $(kv rate "$res")/s"
}

# logflood_run SERVER LOGFILE NET: bytes SERVER logs a second while connections from 100 addresses of NET
# read the greeting and close, as fast as they go, for LOGFLOOD_SECS (and the second after)
logflood_run() {
    local s=$1 f=$2 res b0 b1 secs=$((LOGFLOOD_SECS + 1))
    b0=$(stat -c %s "$f")
    res=$(bench_run $((LOGFLOOD_SECS + 60)) connflood --addr "$(where "$s")" --from-net "$3" --addresses 100 \
        --threads 8 --secs "$LOGFLOOD_SECS")
    sleep 1
    b1=$(stat -c %s "$f")
    R[lograte,$s]=$(( (b1 - b0) / secs ))
    log "$s: connection flood ($(kv connections "$res") connections in $(kv secs "$res") s, $(kv greeted "$res") greeted): $((b1 - b0)) bytes logged in $secs s = ${R[lograte,$s]} B/s"
}

phase_flood() {
    local s kind n
    # DESIGN.md, "Logs that cannot be flooded": 100 lines at once then 20 a second, under 400 bytes a line
    R[logbound,pop3d]=$(( (100 + 20 * (LOGFLOOD_SECS + 1)) * 400 / (LOGFLOOD_SECS + 1) ))
    for s in $SERVERS; do
        [ "$s" != popa3d ] || continue   # no TLS, and a process per connection under tcpserver
        if [ "$s" = pop3d ]; then busy_start users; else TLS=1 start_server "$s"; fi
        for kind in silent drip tls; do for n in 1 50; do flood_run "$s" "$kind" "$n"; done; done
        # The same dripping flood re-opened at once: a connection-rate flood (for information)
        for n in 1 50; do flood_run "$s" drip "$n" 0; done
        if [ "$s" = pop3d ]; then busy_start users; fi
        guess_run "$s" "127.0.6$([ "$s" = pop3d ] && echo 0 || echo 1)"
        if [ "$s" = pop3d ]; then
            busy_start users
            logflood_run "$s" "$BUSY_LOG" 127.0.70
            # the dripped ClientHello, with timeout_login = 1: the deadline is 4 s, enforced 1 s later
            busy_start users timeout_login=1
            R[tlsdrip,$s]=$(kv closed_s "$(bench_run $((DRIP_SECS + 30)) tlsdrip --addr "$BUSY_TADDR" --tls "$CERT" \
                --every-ms 500 --secs "$DRIP_SECS")")
            busy_stop
        else
            logflood_run "$s" "$W/srv/dovecot/dovecot.log" 127.0.71
            R[tlsdrip,$s]=$(kv closed_s "$(bench_run $((DRIP_SECS + 30)) tlsdrip --addr "${TADDR[$s]}" --tls "$CERT" \
                --every-ms 500 --secs "$DRIP_SECS")")
            stop_server "$s"
        fi
        log "$s: a ClientHello dripped a byte every 0.5 s: closed after ${R[tlsdrip,$s]:-n/a} s (open: not within $DRIP_SECS s)"
    done
}

# busy_facts: these phases' settings, for the results file (bench/report.py's labels and notes)
busy_facts() {
    printf '%s\n' "busysecs=$BUSY_SECS" "natsecs=$NAT_SECS" "floodconns=$FLOOD_CONNS" "floodruns=$FLOOD_RUNS" \
        "floodreopen=$FLOOD_REOPEN_MS" \
        "dripsecs=$DRIP_SECS" "guesssecs=$GUESS_SECS" "logfloodsecs=$LOGFLOOD_SECS"
}
