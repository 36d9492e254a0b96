# Password guessing against pop3d from many loopback addresses (127.0.0.0/8): guesses answered per address, per network, per account, with an own account logging in between, and in inetd mode under tcpserver, each against the bound the configured delays give.
import calendar
import os
import select
import socket
import subprocess
import threading
import time

import interop_lib as lib
from interop_lib import PASSWORDS

# The bound, from the delays (src/penalty.rs; limits.rs: AUTH_FAIL_DELAY 0.5 s, at most 8 steps): a clean
# address, network or account answers a first wave of parallel attempts at once (THREADS of them here;
# at most the sessions a network may hold before login); from then on every attempt counts as a failure
# when it takes its slot, and with 8 failures on record the answers leave one at a time, 4 s apart: one
# at once, then one per 4 s. Measured over a WINDOW-second window from the first guess.
WINDOW = 6.0
THREADS = 8
BOUND = THREADS + 1 + int(WINDOW // 4.0)  # 10
# Generous margin for scheduling; without the limits a loopback guesser gets 14-95 answers a second.
MARGIN = 2


def guess(port, sources, user, deadline, counter, own=None):
    """Guess `user`'s password from `sources` (connecting from each in turn) until `deadline`; counts the
    failures answered before it. With `own` = (name, password) it logs in to that account instead, on every
    connection (an attacker with an account of its own), and counts those logins in counter[2]."""
    i = 0
    while time.monotonic() < deadline and i < 1000:
        src = sources[i % len(sources)]
        i += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((src, 0))
            s.settimeout(lib.IO_TIMEOUT)
            s.connect(("127.0.0.1", port))
            f = s.makefile("rb")
            if not f.readline().startswith(b"+OK"):
                continue
            if own is not None:
                # The attacker's own account, logging in and out (the window bounds the wait).
                s.settimeout(max(0.01, deadline - time.monotonic()))
                s.sendall(b"USER %s\r\nPASS %s\r\n" % (own[0].encode(), own[1].encode()))
                f.readline()
                if f.readline().startswith(b"+OK"):
                    with counter[1]:
                        counter[2] += 1
                    s.sendall(b"QUIT\r\n")
                    f.readline()
                continue
            for _ in range(5):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                # The window, not a hang guard: an answer not back by the deadline is not counted.
                s.settimeout(left)
                s.sendall(b"USER %s\r\nPASS wrong-%d\r\n" % (user.encode(), i))
                f.readline()
                reply = f.readline()
                if not reply:
                    break
                if reply.startswith(b"-ERR [AUTH]") and time.monotonic() <= deadline:
                    with counter[1]:
                        counter[0] += 1
        except (socket.timeout, ConnectionError):
            pass
        finally:
            s.close()


def attack(port, source_lists, user="alice", own=None):
    """Guesses from a thread per list of sources (and, with `own`, as many threads logging in to the
    attacker's own account); returns the failures answered within the window (and the own logins)."""
    deadline = time.monotonic() + WINDOW
    counter = [0, threading.Lock(), 0]
    threads = [threading.Thread(target=guess, args=(port, srcs, user, deadline, counter), daemon=True)
               for srcs in source_lists]
    if own is not None:
        threads += [threading.Thread(target=guess, args=(port, srcs, user, deadline, counter, own), daemon=True)
                    for srcs in source_lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WINDOW + lib.IO_TIMEOUT)
    return (counter[0], counter[2]) if own is not None else counter[0]


def test_guesses_from_one_address(env):
    d = env.start()
    n = attack(d.port, [["127.0.0.2"]] * THREADS)
    assert 1 <= n <= BOUND + MARGIN, (n, BOUND)


def test_guesses_from_many_addresses_of_one_network(env):
    d = env.start("network_prefix_ipv4=24")
    # Every connection from a new address of 127.0.3.0/24.
    sources = [["127.0.3.%d" % (t * 30 + k + 1) for k in range(30)] for t in range(THREADS)]
    n = attack(d.port, sources)
    assert 1 <= n <= BOUND + MARGIN, (n, BOUND)


def test_a_success_from_the_same_address_does_not_reset_the_record(env):
    env.write_mbox("bob", b"")
    d = env.start()
    n, own = attack(d.port, [["127.0.0.4"]] * (THREADS // 2), own=("bob", PASSWORDS["bob"]))
    assert own >= 1, "the attacker's own logins went through"
    assert 1 <= n <= BOUND + MARGIN, (n, BOUND)


def failure_times(log, name):
    """When each failed login for `name` was logged (seconds since the epoch, from the log line's UTC
    timestamp, e.g. 2026-12-03T14:35:50.80772146Z)."""
    times = []
    for line in log.splitlines():
        if 'login failed for "%s"' % name in line:
            stamp, _, fraction = line.split(" ", 1)[0].rstrip("Z").partition(".")
            whole = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
            times.append(whole + float("0." + (fraction or "0")))
    return times


def test_guesses_at_one_account_from_many_networks_and_its_owner_still_logs_in(env):
    env.write_mbox("alice", lib.build_mbox(lib.tricky_messages()[:1]))
    d = env.start()
    # alice's own network: known once she has logged in from it.
    owner = ("127.0.5.1", 0)

    def alice_login():
        s = socket.socket()
        s.bind(owner)
        s.settimeout(lib.IO_TIMEOUT)
        s.connect(("127.0.0.1", d.port))
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        sessions = d.stderr().count("session end: user=alice ")
        sent = time.time()
        s.sendall(b"USER alice\r\nPASS %s\r\n" % PASSWORDS["alice"].encode())
        f.readline()
        reply = f.readline()
        answered = time.time()
        s.sendall(b"QUIT\r\n")
        f.readline()
        s.close()
        # The daemon's log is read by a thread of this test: once her session's last line is in, every
        # line written before it is. The guesses answered during her login are those logged then (by the
        # daemon's clock, which is this machine's).
        log = lib.poll_until(lambda: (d.stderr().count("session end: user=alice ") > sessions, d.stderr()),
                             "alice's session line")
        return reply, len([t for t in failure_times(log, "alice") if sent <= t <= answered])

    assert alice_login()[0].startswith(b"+OK")
    # A new address (its own /32 network) for every connection.
    sources = [["127.0.6.%d" % (t * 30 + k + 1) for k in range(30)] for t in range(THREADS)]
    result = {}
    t = threading.Thread(target=lambda: result.update(n=attack(d.port, sources)), daemon=True)
    t.start()
    # alice logs in while the attack goes on, once the account's spacing has reached 2 s (4 failures;
    # the loop is bounded by the attack's window).
    deadline = time.monotonic() + WINDOW
    while time.monotonic() < deadline and d.stderr().count('login failed for "alice"') < 4:
        time.sleep(0.05)
    reply, answered_meanwhile = alice_login()
    t.join(WINDOW + lib.IO_TIMEOUT)
    assert reply.startswith(b"+OK"), reply
    # Her known network is exempt from the account's queue: she is answered without waiting for the
    # attack's slots (queued behind them, her answer would come after every guess already waiting, 2 s
    # apart by now); an ordering, not a time, so it holds on a busy machine. One guess whose slot happened
    # to fall during her login is allowed.
    assert answered_meanwhile <= 1, answered_meanwhile
    assert 1 <= result["n"] <= BOUND + MARGIN, (result["n"], BOUND)


def test_inetd_sessions_under_tcpserver_share_the_record(env):
    tcpserver = lib.need_tool("tcpserver")
    logfile = os.path.join(env.srv, "pop3d.log")
    env.write_conf(log=logfile)
    env.fix_perms()
    proc = subprocess.Popen([tcpserver, "-1", "-q", "-R", "-H", "-l", "localhost", "-c", "100", "127.0.0.1", "0",
                             lib.POP3D_BIN, "-i", "-f", env.conf],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    env.cleanups.append(lambda: lib.kill_group(proc))
    ready, _, _ = select.select([proc.stdout], [], [], lib.START_TIMEOUT)
    assert ready, "tcpserver did not report its port"
    port = int(proc.stdout.readline().strip())
    n = attack(port, [["127.0.0.7"]] * THREADS)
    assert 1 <= n <= BOUND + MARGIN, (n, BOUND)
    with open(os.path.join(env.state, "penalties")) as f:
        assert "a 127.0.0.7 " in f.read()
