# Logs that cannot be flooded: bytes logged under a connection flood and a failure flood from many loopback addresses stay under the bound the rate limits give; a summary says what was held back; an overlong user name is cut and escaped.
import base64
import socket
import threading
import time

import interop_lib as lib

# src/limits.rs: LOG_BURST lines at once, then LOG_RATE a second, for lines about sessions that never
# logged in; client text cut to 64 bytes, each escaped to at most 4 characters: under 400 bytes a line.
LOG_BURST, LOG_RATE, MAX_LINE = 100, 20, 400
FLOOD = 20.0  # seconds at most: a flood ends when it has made CONNECTIONS
THREADS = 8
CONNECTIONS = 600


def flood(port, send, window, addresses=100, threads=THREADS):
    """CONNECTIONS connections (or as many as `window` seconds allow) from `addresses` rotating addresses
    of 127.12.0.0/16, each sending `send` and reading until the server closes or a second passes; returns
    how many were made."""
    deadline = time.monotonic() + window
    count = [0, threading.Lock()]

    def worker(t):
        i = t
        while time.monotonic() < deadline:
            with count[1]:
                if count[0] >= CONNECTIONS:
                    return
                count[0] += 1
            i += threads
            s = socket.socket()
            try:
                a = i % addresses
                s.bind(("127.12.%d.%d" % (a // 250, a % 250 + 1), 0))
                s.settimeout(1.0)
                s.connect(("127.0.0.1", port))
                s.recv(512)
                if send:
                    s.sendall(send(i))
                    while s.recv(512):
                        pass
            except OSError:
                pass
            finally:
                s.close()

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(window + lib.IO_TIMEOUT)
    return count[0]


def logged_during(d, action):
    """Runs `action`; returns (its result, the log lines written meanwhile and in the second after, the
    seconds that took)."""
    before = len(d.lines)
    started = time.monotonic()
    result = action()
    time.sleep(1.0)  # lines of sessions still ending; this is a measurement window, not a synchronisation
    return result, d.lines[before:], time.monotonic() - started


def wait_for(d, text):
    deadline = time.monotonic() + 15  # a hang guard: the summary comes every 10 s
    while text not in d.stderr():
        assert time.monotonic() < deadline, "log never showed %r" % text
        time.sleep(0.1)


def check_bound(lines, seconds):
    size = sum(len(line) for line in lines)
    bound = (LOG_BURST + LOG_RATE * seconds + 5) * MAX_LINE  # +5: limit, admission and summary lines
    assert size <= bound, (size, bound, len(lines))
    return size


def test_a_connection_flood_is_logged_within_the_bound(env):
    d = env.start("max_prelogin_per_network=50")
    made, lines, seconds = logged_during(d, lambda: flood(d.port, None, FLOOD))
    assert made >= LOG_BURST * 2, made  # without limits each connection logs a line
    size = check_bound(lines, seconds)
    print("connection flood: %d connections, %d lines, %d bytes logged" % (made, len(lines), size))
    wait_for(d, "connection and failure log lines in the last")


def test_a_failure_flood_is_logged_within_the_bound(env):
    d = env.start("max_prelogin_per_network=50")
    # A new address for every guess (brute-force limits would space guesses from one address), and many
    # connections at once (each failure is answered 0.5 s after it was made).
    guess = lambda i: b"USER user%d\r\nPASS wrong\r\nQUIT\r\n" % i
    made, lines, seconds = logged_during(d, lambda: flood(d.port, guess, FLOOD, CONNECTIONS, threads=64))
    assert made >= LOG_BURST * 2, made
    size = check_bound(lines, seconds)
    print("failure flood: %d connections, %d lines, %d bytes logged" % (made, len(lines), size))


def test_an_overlong_user_name_is_cut_and_escaped(env):
    d = env.start()
    name = b"x\n2026-01-01 [INFO] login alice\x1b[31m" + b"B" * 6000
    c = d.raw()
    assert c.cmd("AUTH PLAIN").startswith(b"+ ")
    # The continuation line may be up to 8 KiB (a 255-octet command line cannot carry it).
    assert c.cmd(base64.b64encode(b"\0" + name + b"\0wrong") + b"\r\n").startswith(b"-ERR [AUTH]")
    deadline = time.monotonic() + lib.IO_TIMEOUT  # a hang guard for the log line
    while b"login failed for" not in b"".join(d.lines):
        assert time.monotonic() < deadline, d.stderr()
        time.sleep(0.05)
    line = [l for l in d.lines if b"login failed for" in l][0]
    assert len(line) < MAX_LINE, line
    assert b'"x\\x0a2026-01-01 [INFO] login alice\\x1b[31mBBB' in line, line
    assert b"...(%d bytes)" % len(name) in line and b"\x1b" not in line and line.count(b"\n") == 1, line


def test_inetd_sessions_under_tcpserver_share_one_log_budget(env):
    import os
    import select
    import subprocess
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
    started = time.monotonic()
    made = flood(port, None, FLOOD)
    time.sleep(1.0)  # sessions still ending: a measurement window, not a synchronisation
    seconds = time.monotonic() - started
    with open(logfile, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    assert made >= LOG_BURST * 2, made
    size = check_bound(lines, seconds)
    print("inetd connection flood: %d connections, %d lines, %d bytes logged" % (made, len(lines), size))
    with open(os.path.join(env.state, "logbudget")) as f:
        assert int(f.read().split()[2]) > 0, "lines were held back and counted for the summary"
