#!/usr/bin/env python3
"""bench/report.py: the table and notes of `make bench`, made from the figures bench/run.sh recorded.

Usage: python3 bench/report.py RESULTS

RESULTS is the key=value file run.sh writes ($BENCH_DIR/results-TIME.txt, its path printed at the end of a
run): one `metric,server=figure` line per figure (`login8,pop3d=412.7`, exactly run.sh's R[metric,server]),
and the run's facts (`date=...`, `secs=5`). A saved file prints the same report again without measuring.

Every row of the table is one entry of ROWS: its label, the figure it shows, for which servers, its target
with the test that says whether pop3d meets it, and a note for the notes under the table if it needs one.
A new figure: run.sh stores it as R[metric,server] (saved with the others), and one `row(...)` line here
shows it, where it should print.
"""
import re
import sys
import textwrap
from collections import namedtuple

SERVERS = ("pop3d", "dovecot", "popa3d")
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def number(text):
    """The value of a figure that is a plain decimal number (as run.sh's `num`), else None."""
    return float(text) if text is not None and NUMBER.fullmatch(text) else None


# ---------------------------------------------------------------- figures
# A figure gives, for a results dict and a server, its raw text (None: not measured) and the text shown.


class Metric(namedtuple("Metric", "name")):
    """R[name,server]; a name with a comma (`cgipb,trivial`) is that one figure whatever the column."""

    def raw(self, results, server):
        return results.get(self.name if "," in self.name else "%s,%s" % (self.name, server))

    def show(self, results, server):
        value = self.raw(results, server)
        return "n/a" if value is None else value


class Max(namedtuple("Max", "a b")):
    """The larger of two figures, n/a unless both are numbers (peak RSS over two sessions)."""

    def raw(self, results, server):
        a, b = Metric(self.a).raw(results, server), Metric(self.b).raw(results, server)
        if number(a) is None or number(b) is None:
            return None
        return a if number(a) > number(b) else b

    show = Metric.show


class Ratio(namedtuple("Ratio", "a b")):
    """a / b as `1.23x`."""

    def raw(self, results, server):
        a, b = number(Metric(self.a).raw(results, server)), number(Metric(self.b).raw(results, server))
        return "%.2fx" % (a / b) if a is not None and b is not None and b > 0 else None

    show = Metric.show


class KiB(namedtuple("KiB", "figure unit")):
    """A figure in KiB shown in MiB (`10.9 MiB`; with unit "", the bare number)."""

    def raw(self, results, server):
        return self.figure.raw(results, server)

    def show(self, results, server):
        value = number(self.raw(results, server))
        return "n/a" if value is None else ("%.1f" % (value / 1024) + self.unit)


def mib(name):
    return KiB(Metric(name), " MiB")


class Both(namedtuple("Both", "a b")):
    """Two figures side by side: `a / b`."""

    def show(self, results, server):
        return "%s / %s" % (self.a.show(results, server), self.b.show(results, server))


def figure(spec):
    return Metric(spec) if isinstance(spec, str) else spec


# ---------------------------------------------------------------- targets

class Target(namedtuple("Target", "text met operands")):
    """What pop3d should reach: the text shown, and `met`, a test of the operands' values (pop3d's
    figures, or `metric,server`), all of which must be numbers for a verdict."""

    def verdict(self, results):
        values = [number(figure(o).raw(results, "pop3d")) for o in self.operands]
        if any(v is None for v in values):
            return "n/a"
        return "yes" if self.met(*values) else "NO"


def target(text, met, *operands):
    return Target(text, met, operands)


# Which servers a row has a figure for: the others' cells say why not, or are empty.
ALL = {}
POP3D = {"dovecot": "", "popa3d": ""}
TLS = {"popa3d": "n/a (no TLS)"}
MAILDIR = {"popa3d": "n/a (mbox)"}

Row = namedtuple("Row", "label figure servers target note")


def row(label, spec, servers=ALL, goal="-", note=None):
    """A row: `spec` a metric name or a figure; `goal` a target() or a text; `note` a paragraph for the notes."""
    return Row(label, figure(spec), servers, goal, note)


# Phase 9 (UPDATE on loop filesystems): pop3d and Dovecot only.
UPDFS = {"popa3d": "n/a"}


def update_fs_rows(fs):
    """Phase 9's rows for one filesystem: the time of QUIT after DELE 1, and the octets the loop device received
    per octet moved. btrfs and XFS share blocks: at most 1.1x, and no slower than Dovecot; ext4 cannot, and
    writes the tail twice (for information)."""
    time, written = "updfs" + fs, Ratio("updfsbytes" + fs, "updfsmoved")
    if fs == "ext4":
        return [row("UPDATE on ext4 (loop file): QUIT after DELE 1, ms", time, UPDFS, "(for information)"),
                row("  octets written / octets moved", written, UPDFS, "~2x (no clones)")]
    return [
        row("UPDATE on %s (loop file): QUIT after DELE 1, ms" % fs, time, UPDFS,
            target("<= dovecot", lambda a, b: a <= b, time, time + ",dovecot")),
        row("  octets written / octets moved", written, UPDFS,
            target("<= 1.1x", lambda a, b: a <= 1.1 * b, "updfsbytes" + fs, "updfsmoved")),
    ]


# ---------------------------------------------------------------- the table
# One line per row: label (with {facts} of the run), figure, servers, target, and a note where one is needed
# beyond the notes below (printed after them, in the order of the rows).
ROWS = [
    row("login+STAT+QUIT/s, 8 clients", "login8"),
    row("login+STAT+QUIT/s, 64 clients", "login64"),
    row("server CPU per plain login, 8 clients, ms", "logincpu8"),
    row("  one SHA512-CRYPT hash (crypt(3)), CPU ms", "hash", POP3D),
    row("  pop3d's CPU per login / one hash", Ratio("logincpu8", "hash"), POP3D,
        target("<= 1.2x", lambda a, b: a <= 1.2 * b, "logincpu8", "hash")),
    row("  same by instructions (callgrind), M per login", "cglogin", POP3D),
    row("  M instructions per hash (callgrind)", "cghash", POP3D),
    row("  pop3d's instructions per login / per hash", Ratio("cglogin", "cghash"), POP3D,
        target("<= 1.2x", lambda a, b: a <= 1.2 * b, "cglogin", "cghash")),
    row("RETR all of 100 MB / 2,000 msgs, 1 at a time, MB/s", "retr1", ALL, "(for information)"),
    row("  same, pipelined 8 deep, MB/s", "retr8", ALL,
        target(">= 5x dovecot", lambda a, b: a >= 5 * b, "retr8", "retr8,dovecot")),
    row("  LIST vs RETR size mismatches (+ POP3S)", "retrmis", ALL, target("0", lambda a: a == 0, "retrmis")),
    row("  server CPU per GB sent, 8 deep, s", "retr8cpu"),
    row("  trivial sender, same file, CPU per GB, s", "trivcpu", POP3D),
    row("  pop3d's CPU per GB / trivial sender's", Ratio("retr8cpu", "trivcpu"), POP3D,
        target("<= 2.0x", lambda a, b: a <= 2 * b, "retr8cpu", "trivcpu")),
    row("  instructions per octet (callgrind)", "cgipb", POP3D),
    row("  trivial sender, instructions per octet", "cgipb,trivial", POP3D),
    row("POP3S sessions/s, full handshake, 8 clients", "tlslogin8", TLS,
        target(">= 3x dovecot", lambda a, b: a >= 3 * b, "tlslogin8", "tlslogin8,dovecot")),
    row("  same, 64 clients", "tlslogin64", TLS,
        target(">= 3x dovecot", lambda a, b: a >= 3 * b, "tlslogin64", "tlslogin64,dovecot")),
    row("  TLS handshake p50, 8 clients, ms", "tlshs8", TLS),
    row("  server CPU per session, 8 clients, ms", "tlscpu8", TLS),
    row("  resumed handshakes (must be 0)", "tlsresumed", TLS, target("0", lambda a: a == 0, "tlsresumed")),
    row("POP3S RETR all of 100 MB, 1 at a time, MB/s", "tlsretr1", TLS, "(for information)"),
    row("  same, pipelined 8 deep, MB/s", "tlsretr8", TLS,
        target(">= 4x dovecot", lambda a, b: a >= 4 * b, "tlsretr8", "tlsretr8,dovecot")),
    row("  server CPU per GB sent, 8 deep, s", "tlsretr8cpu", TLS),
    row("  trivial sender via rustls, CPU per GB, s", "trivtlscpu", POP3D),
    row("  pop3d's CPU per GB / trivial sender's", Ratio("tlsretr8cpu", "trivtlscpu"), POP3D,
        target("<= 2.5x", lambda a, b: a <= 2.5 * b, "tlsretr8cpu", "trivtlscpu")),
    row("first STAT, 1 GB / 100k msgs, 1st session, ms", "statcold", ALL,
        target("<= popa3d's", lambda a, b: a <= b, "statcold", "statcold,popa3d")),
    row("  peak RSS of the serving process", mib("statrsscold"), ALL,
        target("< 32 MiB", lambda a: a < 32768, "statrsscold")),
    row("STAT again (2nd session, unchanged), ms", "statwarm", ALL, target("<= 50 ms", lambda a: a <= 50, "statwarm")),
    row("  after 100 new messages appended, ms", "statappend", ALL,
        target("<= 60 ms", lambda a: a <= 60, "statappend")),
    row("  peak RSS in these two sessions", KiB(Max("statrsswarm", "statrssappend"), " MiB"), ALL,
        target("<= 16 MiB", lambda a: a <= 16384, Max("statrsswarm", "statrssappend"))),
    row("  (pop3d's RSS before the 2nd / append, MiB)",
        Both(KiB(Metric("statrss0warm"), ""), KiB(Metric("statrss0append"), "")), POP3D),
    row("UPDATE: QUIT after DELE 1 of 100 MB mbox, ms", "updfirst", ALL, "(see phase 9 rows)"),
    row("  after DELE of every 10th (200), ms", "updtenth"),
    row("  after DELE of all 2,000, ms", "updall"),
    *[r for fs in ("btrfs", "xfs", "ext4") for r in update_fs_rows(fs)],
    row("Maildir, {mdmsgs} msgs: first STAT, ms", "statmdcold", MAILDIR),
    row("  STAT again (2nd session), ms", "statmdwarm", MAILDIR,
        target("<= dovecot", lambda a, b: a <= b, "statmdwarm", "statmdwarm,dovecot")),
    row("  peak RSS of the serving process, 1st/2nd", KiB(Max("statrssmdcold", "statrssmdwarm"), " MiB"), MAILDIR),
    row("RSS per idle session, KiB (RSS sum delta)", "idlerss", ALL, target("< 100 KiB", lambda a: a < 100, "idlerss")),
    row("  same, PSS sum delta, KiB", "idlepss"),
    row("binary size, bytes", "size", ALL, target("< 1,500,000", lambda a: a < 1500000, "size")),
]

# Issue 18's rows (bench/busy.sh; BENCH_PHASES="busy household spacing flood" runs them alone): a busy address,
# a household behind one NAT, wrong passwords by every mechanism, and what the floods may not take.
USERS = {"popa3d": "n/a (PAM)"}
SYSTEM = {"dovecot": "(see above)"}
SASL = {"popa3d": "n/a: no SASL"}
FLOOD = {"popa3d": ""}
BLANK = {"pop3d": "", "dovecot": "", "popa3d": ""}


class Whole(namedtuple("Whole", "name")):
    """A figure shown rounded to a whole number (milliseconds that need no decimals)."""

    def raw(self, results, server):
        return Metric(self.name).raw(results, server)

    def show(self, results, server):
        value = self.raw(results, server)
        return "n/a" if value is None else ("%.0f" % number(value) if number(value) is not None else value)


class Sum(namedtuple("Sum", "names")):
    """The sum of several figures, n/a unless all are numbers."""

    def raw(self, results, server):
        values = [number(Metric(n).raw(results, server)) for n in self.names]
        return None if any(v is None for v in values) else "%g" % sum(values)

    show = Metric.show


class Largest(namedtuple("Largest", "names")):
    """The largest of several figures, n/a unless all are numbers."""

    def raw(self, results, server):
        values = [Metric(n).raw(results, server) for n in self.names]
        return None if any(number(v) is None for v in values) else max(values, key=number)

    show = Metric.show


def both(a, b, figure=Metric):
    return Both(figure(a), figure(b))


def busy_rows(key, where, servers, note=None):
    """The rows of one busy-address run: `key` busyu (users file) or busys (system accounts)."""
    return [
        row("busy address, %s: logins/s, 8 clients" % where, key + "8", servers, note=note),
        row("  64 clients, same address (%s)" % where, key + "64", servers,
            target(">=0.8x 8, >=dovecot", lambda a, b, c: a >= 0.8 * b and a >= c, key + "64", key + "8",
                   "busyu64,dovecot")),
        row("  failed sessions at 64 (%s), n / %%" % where, both(key + "64err", key + "64pct"), servers,
            target("< 1%", lambda a: a < 1, key + "64pct")),
        row("  pop3d's peak threads, 64 (%s) / bound" % where, both(key + "64thr", "busythrbound"), POP3D,
            target("<= bound", lambda a, b: a <= b, key + "64thr", "busythrbound")),
        row("  pop3d's peak RSS, 64 (%s)" % where, mib(key + "64rss"), POP3D),
    ]


FLOODS = tuple("fl%s%d" % (kind, n) for kind in ("silent", "drip", "tls") for n in (1, 50))
FLOOD_FAILED = Sum(tuple(f + "fail" for f in FLOODS))
# The thread bound holds under every flood, the connection-rate ones included.
FLOOD_THREADS = Largest(tuple(f + "thr" for f in FLOODS + ("flnowdrip1", "flnowdrip50")))


def under_flood(kind, n, at_once=False):
    """The row of real clients timed while a flood of `kind` from `n` addresses is held (`at_once`: re-opened at
    once, a connection-rate flood, for information)."""
    key = "fl%s%s%d" % ("now" if at_once else "", kind, n)
    label = "  {floodconns} %s conns from %d address%s%s" % (
        {"drip": "dripping", "tls": "TLS-stalled"}.get(kind, kind), n, "es" * (n > 1), ", at once" * at_once)
    goal = "(for information)" if at_once else target(
        "<= 100 ms, both", lambda a, b: a <= 100 and b <= 100, key + "clean", key + "own")
    return row(label, both(key + "clean", key + "own", Whole), FLOOD, goal)


ROWS += busy_rows("busyu", "users file", USERS, note="""login+STAT+QUIT loops \
(pop3bench logins) with every connection from one address (127.0.18.1; the login rows above come from 127.0.0.1, one \
address too), each client its own account, {busysecs} s per figure. pop3d runs with its default limits (max_sessions \
200, max_sessions_per_ip 100, max_prelogin 100, max_prelogin_per_network 80); Dovecot and popa3d as above. Failed: \
connection errors and -ERR answers, of all sessions tried. Peak threads: /proc/PID/status of the daemon sampled every \
5 ms during the 64-client run, against max_sessions + SESSION_THREAD_SPARE (32) + 8 for the daemon's own threads; \
peak RSS: its VmHWM, reset before the run. System accounts: pop3d started as root with accounts = system over the \
bench's system users (/etc/passwd, /etc/shadow, SHA512-CRYPT), user = mail, mailboxes NAME:mail 0660 in a root:mail \
2775 spool (from 127.0.18.2); popa3d (PAM) beside it; Dovecot's figure is its users-file one""")
ROWS += busy_rows("busys", "system accts", SYSTEM)
ROWS += [
    row("NAT household: good login, p50 ms", "natp50", ALL, target("<= 50 ms", lambda a: a <= 50, "natp50"),
        note="""one address per server (127.0.18.11-13), {natsecs} s: a device \
logs in as pb0101 with a wrong password every 2 s (one attempt after the other, each waiting for its answer), while \
pb0100, which logged in from that address just before, logs in correctly every 3 s (half a second after the \
device's cycle starts); the figure is pb0100's time from connect to the +OK of PASS (pop3bench household)"""),
    row("  good login, max ms", "natmax"),
    row("  good logins that failed", "natfail", ALL, target("0", lambda a: a == 0, "natfail")),
    row("12 wrong passwords, 12 addresses: USER/PASS, s", "spanuser", SASL, note="""12 wrong passwords for one \
account, one after the other, each from an address of its own, so that only the account's record can space them \
(pop3bench spacing); the figure is the time from the first answer to the last. pop3d: an account with SCRAM keys \
(pop3d -P) per mechanism, the four mechanisms at once (nothing shared: other accounts, other addresses); SCRAM is a \
real client exchange (RFC 5802) with the wrong password. The bench's Dovecot has SHA512-CRYPT hashes only, so no \
SCRAM; it spaces failures per address (auth_failure_delay) only"""),
    row("  same by AUTH PLAIN, s", "spanplain", SASL,
        target("USER/PASS +-10%", lambda a, b: 0.9 * b <= a <= 1.1 * b, "spanplain", "spanuser")),
    row("  same by AUTH LOGIN, s", "spanlogin", SASL,
        target("USER/PASS +-10%", lambda a, b: 0.9 * b <= a <= 1.1 * b, "spanlogin", "spanuser")),
    row("  same by AUTH SCRAM-SHA-256, s", "spanscram", {"dovecot": "n/a: crypt", "popa3d": "n/a: no SASL"},
        target("USER/PASS +-10%", lambda a, b: 0.9 * b <= a <= 1.1 * b, "spanscram", "spanuser")),
    row("login+RETR+QUIT max ms (clean / flood's addr)", "-", BLANK, note="""a real client (login, RETR 1, \
QUIT; connect to the QUIT answer) from a clean address (127.0.19.1) and from the flood's own first address, \
{floodruns} times each, once the flood's {floodconns} connections are up (pop3bench flood): silent ones, ones sending \
a byte a second, or ones that sent the first 6 bytes of a TLS ClientHello to the POP3S port; from 1 address or \
from 50, each re-opened {floodreopen} ms after the server closes it (the flood holds its connections, at the pace \
of tests/interop/test_admission.py). The dripping flood is run once more re-opened at once, a connection-rate flood \
as fast as the load client goes (beside the server on the same two CPUs), for information: that is SYN-flood \
ground, the kernel's (syncookies) and a firewall's (connection-rate limits per source), not a POP3 server's. \
The log lines say how many were connected (the kernel's accept queue included) and how fast they were re-opened, \
and how long TCP's connect took: a second or more there is a SYN the kernel dropped because the server's accept \
queue was full (then retried by the client's TCP). A real client the server closed or refused is counted in the \
"failed" row (the log names its address and the step it failed at). pop3d's threads: sampled every 5 ms during each \
flood, the largest. \
pop3d with its defaults (max_prelogin 100: the flood is mostly turned away, and comes back); the bench's Dovecot has \
process limits raised for the idle-session rows (1,200 processes), so it keeps the flood's connections"""),
    under_flood("silent", 1),
    under_flood("silent", 50),
    under_flood("drip", 1),
    under_flood("drip", 50),
    under_flood("tls", 1),
    under_flood("tls", 50),
    under_flood("drip", 1, at_once=True),
    under_flood("drip", 50, at_once=True),
    row("  real clients that failed under these floods", FLOOD_FAILED, FLOOD,
        target("0", lambda a: a == 0, FLOOD_FAILED)),
    row("  pop3d's peak threads under them / bound", Both(FLOOD_THREADS, Metric("busythrbound")), POP3D,
        target("<= bound", lambda a, b: a <= b, FLOOD_THREADS, "busythrbound")),
    row("TLS ClientHello dripped 1 B/0.5 s: cut after, s", "tlsdrip", FLOOD,
        target("4 s to 5.5 s", lambda a: 4 <= a <= 5.5, "tlsdrip"), note="""a full ClientHello (rustls) sent a byte \
every 0.5 s (pop3bench tlsdrip, at most {dripsecs} s; "open": not closed by then); pop3d with timeout_login = 1, \
so its deadline before login is 4 s, enforced from outside 1 s later (every 0.5 s); Dovecot with its defaults"""),
    row("distributed guessing at one account, guesses/s", "guessrate", FLOOD,
        target("<= 0.6/s", lambda a: a <= 0.6, "guessrate"), note="""8 threads guess one account's password, one \
guess per connection, each from the next of 250 addresses (every one its own network), for {guesssecs} s; the \
answers that came within the window, per second (pop3bench guess)"""),
    row("log bytes/s under a connection flood", "lograte", FLOOD,
        target("<= bound", lambda a, b: a <= b, "lograte", "logbound,pop3d"), note="""8 threads connect from 100 \
addresses, read the greeting and close, as fast as they go, for {logfloodsecs} s (pop3bench connflood); the bytes \
the server's log grew by until a second after, per second. The bound is DESIGN.md's (Logs that cannot be flooded): \
100 lines at once, then 20 a second, each under 400 bytes"""),
    row("  the bound, bytes/s", "logbound", POP3D),
]

HEADER = """
pop3d benchmark: {date}, {nproc} CPUs, {kernel}, load average {load0} at start; all on 127.0.0.1; MB = 10^6 bytes
The load client shares the {nproc} CPUs with the servers, and other work (builds) may run on this machine: \
it used {allother}% of the CPUs during the measurements ({tlsother}% in the POP3S phase). Figures are best of \
N runs or passes (the servers taking turns) to damp that; server CPU per session or per GB is hardly affected by it.
dovecot {dovecot_version} (Debian, default settings, mbox, private config); popa3d {popa3d_version} \
(Debian, under tcpserver)
"""

NOTES = """
Notes:
- login rate: each client thread loops connect, greeting, USER, PASS, STAT, QUIT with its own account
  (pop3d locks a maildrop per session), for {secs} s or {maxlogin} sessions; SHA512-CRYPT (5000 rounds) everywhere.
  CPU per login: the server's CPU during the 8-client run / sessions. One hash: perl's crypt() (the
  system's crypt(3), libxcrypt, which pop3d calls too) with the bench users' $6$ hash, {nhash} calls
  timed by perl's times() (user+system CPU); what pop3d spends above it is its per-login overhead.
  The CPU figures move with the load on the machine (both are measured, at different moments, on
  shared CPUs); the same ratio by instructions (callgrind, user space only) is repeatable: pop3d -i
  on pipes, USER/PASS/STAT/QUIT of a 10-message mailbox whose index exists, minus QUIT alone; and
  perl's crypt() 10 times minus none, per hash. (pop3d -i also computes one hash when it starts, the
  users-file scheme check of its configuration: in QUIT alone, so not counted here; the daemon does
  that once, but an inetd-mode session pays it on top of its login.)
- RETR: one session, LIST, then RETR 1..2000 one after another (the wait for each answer is in the
  figure), and again with 8 RETRs outstanding where CAPA lists PIPELINING (popa3d does not: n/a);
  MB/s of message octets (after dot-unstuffing) over the RETR phase, best of 5 sessions within 30 s;
  every RETR's size is checked against LIST. popa3d runs under tcpserver -D (TCP_NODELAY): without
  it each RETR stalls ~40 ms on Nagle + delayed ACK (about 1.3 MB/s measured here). One at a time,
  the figure is bound by round trips: on a VM whose idle CPUs sleep, it can rise 2-4x when other
  work keeps the CPUs awake, so compare it between servers within one run only. It is printed for
  information (no longer a target, issue 12); the server's own figures are its CPU per byte and per login.
- trivial sender (`pop3bench trivial-send`): the same 100 MB mbox read in 128 KiB blocks and written as
  it is (no CRLF, no dot-stuffing, no unquoting, no index) to a loopback TCP socket, 10 times (1 GB),
  read by a thread of the same process; plaintext, and through rustls (ring, as pop3d; negotiated as
  pop3d's session). Its figure is the sending thread's CPU ticks (/proc/thread-self/stat) per 10^9
  octets; pop3d's is the daemon's ticks during the 8-deep RETR runs per 10^9 message octets.
- instructions per octet: `valgrind --tool=callgrind` (instruction count, repeatable where time is not)
  of `pop3d -i` serving on pipes USER/PASS + RETR 1..{cgmsgs} + QUIT of the 100 MB mbox, minus the same
  session without the RETRs, per octet of output (the wire form: CRLF, stuffed dots, status lines);
  the trivial sender (--stdout: one pass of the file to a pipe, minus none) per octet of the file.
  Callgrind counts user-space instructions only: the trivial sender's copying is done by the kernel
  in read(2)/write(2), so its count is near zero and no ratio is formed; pop3d's count is what its
  own code (the conversion to the wire form) adds per octet, and the one to watch from run to run.
- POP3S: pop3d and Dovecot restarted with an implicit-TLS listener added (pop3d: `listen = ... tls`,
  tls_cert/tls_key; Dovecot: ssl = yes, inet_listener pop3s), both serving one self-signed ECDSA P-256
  certificate made with openssl for this run. The client (rustls, ring provider, ALPN pop3) trusts only
  that certificate and never resumes a session: every handshake is a full one (a run with a resumed
  handshake or an error is not counted). Negotiated: pop3d {tlsinfo_pop3d}; dovecot {tlsinfo_dovecot}.
  Sessions/s: connect, handshake, greeting, USER, PASS, STAT, QUIT, close_notify; best of {tlsruns} runs
  ({secs} s or {maxlogin} sessions each), the servers taking turns. RETR as above, over TLS, best of 5.
  Dovecot (default settings): each connection gets a new pop3-login process, which does the handshake
  and after login stays as the TLS proxy in front of the session's pop3 process. pop3d: one thread.
- server CPU: user+system time of the server's whole process tree (with its exited children) during a
  measurement, per session or per 10^9 message octets (all passes); it shows the cost even when other
  load on the machine lowers the rates.
- first STAT: time from connect to the STAT answer (includes the login). "1st session" is the first
  session on that mailbox since the server's copy was made, with no index (pop3d's state_dir/USER.index
  removed before it; Dovecot builds its index files then); the file was read once just before, so it is
  in the page cache: the figure is CPU, not disk (the page cache is not dropped). "2nd" is the next
  session; then 100 messages (about 1 MB, generated with another seed) are appended to each server's
  copy and a third session STATs. Peak RSS: pop3d = VmHWM of the daemon, reset before each session
  (/proc/PID/clear_refs) to the RSS it has then (printed: what earlier sessions left); dovecot = VmHWM of \
its "pop3" process; popa3d = largest VmHWM of the popa3d
  processes of the session.
- UPDATE: a fresh copy of the 100 MB / 2,000-message mbox (new file, no index or state of the server),
  synced to disk; a session DELEs message 1, or messages 1, 11, 21, ... (200), or all 2,000, one
  command at a time; the figure is the time from sending QUIT to the server closing the connection
  (the rewrite is done by then); a next session checks the messages left. popa3d for information.
  The servers do not promise the same: pop3d's crash-safe rewrite writes the moved tail (here nearly
  all of the 100 MB) to its journal and flushes it, copies it back and flushes the mailbox before it
  answers, two flushes of 100 MB; Dovecot (mail_fsync = optimized, its default) moves the tail in
  place and flushes nothing, so a crash or power cut during or just after its rewrite can tear the
  mailbox. On the filesystem of BENCH_DIR; the targets are for the filesystems of phase 9 (below).
- UPDATE on loop filesystems (phase 9; BENCH_PHASES=updatefs runs it alone): for each of {updfs_list}, a
  fresh filesystem in a 1 GB loop file (mkfs.btrfs, mkfs.xfs -m reflink=1, mkfs.ext4, without discard) holds
  pop3d's spool and state_dir and Dovecot's mbox, index and mail directory; both servers restarted on it.
  Then, the servers taking turns, one UPDATE each not counted (the first on a fresh filesystem is slower),
  then {updfs_runs} times: a fresh copy of the 100 MB mbox (synced), sync of the filesystem, the session
  DELE 1 + QUIT, sync again. Time: as above, best run. Octets written: what the loop device received
  between the two syncs (/sys/block/loopN/stat), data and metadata, Dovecot's unflushed pages included;
  largest of the runs, over the octets that move (the mbox less message 1). pop3d's journal holds the
  tail at offsets congruent to the mailbox's, so on btrfs and XFS its copy is a clone and the tail is
  written once, into its new place; on ext4 it is written twice (journal, mailbox), and pop3d stays
  crash-safe on all three.
- Maildir: {mdmsgs} messages, {mdbytes} bytes (`pop3bench gen-maildir`), files in cur/ named like a
  delivery agent's (TIME.MnPp.host:2,S, no ,S= size), a copy per server read once into the page cache;
  pop3d with mailbox = maildir:DIR/%u (own state_dir), Dovecot with mail_location = maildir:DIR/%u.
  First session with no index or listing anywhere, then the next; popa3d serves mbox only.
- idle sessions: {nidle} logged-in sessions held open; (memory of the server's whole process tree with
  them) - (before), divided by the sessions. pop3d is one process (threads); dovecot one pop3 process
  per session (plus its master/auth/log); popa3d one process per session under tcpserver. RSS sums
  count shared library pages once per process; PSS shares them out.
- binary size: pop3d = target/release-small/pop3d (stripped); dovecot = master + pop3 + pop3-login +
  auth + config + log + anvil + libdovecot, -storage, -login (the files a POP3-only install runs);
  popa3d = /usr/sbin/popa3d. Dynamically linked against libc in all cases.
"""


def read_results(path):
    """The key=value lines of a results file (blank lines and # comments skipped)."""
    results = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                results[key] = value
    return results


class Facts(dict):
    """The run's facts for the header, labels and notes; one not recorded reads n/a."""

    def __missing__(self, key):
        return "n/a"


def table_line(cells):
    return "| %-50s | %12s | %12s | %12s | %-20s | %-4s |" % tuple(cells)


def report(results):
    """The whole report for `results`, as run.sh prints it."""
    facts = Facts(results)
    for s in SERVERS:
        facts["tlsinfo_" + s] = results.get("tlsinfo," + s, "n/a")
    lines = HEADER.format_map(facts).split("\n")[:-1]
    lines.append("")
    lines.append(table_line(["metric", *SERVERS, "target (pop3d)", "met"]))
    lines.append(table_line(["-" * 50, "-" * 12, "-" * 12, "-" * 12, "-" * 20, "-" * 4]))
    for r in ROWS:
        cells = [r.servers.get(s) if s in r.servers else r.figure.show(results, s) for s in SERVERS]
        goal, met = (r.target.text, r.target.verdict(results)) if isinstance(r.target, Target) else (r.target, "")
        lines.append(table_line([r.label.format_map(facts), *cells, goal, met]))
    lines.extend(NOTES.format_map(facts).split("\n")[:-1])
    for r in ROWS:
        if r.note:
            note = "- %s: %s" % (r.label.strip().format_map(facts), r.note.format_map(facts))
            lines.extend(textwrap.wrap(note, width=110, subsequent_indent="  ", break_on_hyphens=False))
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    sys.stdout.write(report(read_results(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
