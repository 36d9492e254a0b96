# Ordinary load the protections must not hurt: 64 clients from one address (a fetchmail host, an office behind one NAT) all log in while the daemon's threads stay bounded; a household's good login never waits behind a neighbour's typos; a wrong password is charged to its account whichever way it arrives (USER/PASS, AUTH PLAIN, LOGIN, SCRAM-SHA-256).
import base64
import socket
import subprocess
import threading
import time

import pytest
import scramp

import interop_lib as lib
from interop_lib import PASSWORDS

CLIENTS = 64  # concurrent clients from one address
ROUNDS = 10  # sessions each: login, STAT, QUIT
BUSY_SOURCE = "127.0.3.3"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def many_accounts(env, n):
    """`n` accounts busyNN (one $6$ hash for all: the hash is the same work), each with a one-message mbox."""
    h = lib.openssl_passwd("6", "busySALT", "busy-pw")
    for i in range(n):
        env.add_user_line("busy%02d:%s" % (i, h))
        env.write_mbox("busy%02d" % i, lib.build_mbox(lib.tricky_messages(huge=False)[:1]))


def session(port, source, user, password):
    """One login + STAT + QUIT from `source`; None when it worked, else what went wrong."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=lib.IO_TIMEOUT, source_address=(source, 0))
    except OSError as e:
        return "connect: %s" % e
    try:
        f = s.makefile("rb")
        replies = [f.readline()]
        s.sendall(b"USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % (user.encode(), password.encode()))
        replies += [f.readline() for _ in range(4)]
        bad = [r for r in replies if not r.startswith(b"+OK")]
        return "replies %r" % replies if bad else None
    except OSError as e:
        return "%s" % e
    finally:
        s.close()


def threads_of(pid):
    return len(lib.process_threads(pid))


def test_64_clients_from_one_address_all_log_in_and_threads_stay_bounded(env):
    """The defaults let 64 concurrent clients from one address work (before: the pre-login budget per network,
    10, closed the oldest session for every new one, and almost nobody got through); the daemon's threads stay
    within max_sessions + 32 + its own few the whole time (sampled from /proc)."""
    many_accounts(env, CLIENTS)
    d = env.start()
    errors, peak, done = [], [0], threading.Event()

    def client(i):
        for _ in range(ROUNDS):
            why = session(d.port, BUSY_SOURCE, "busy%02d" % i, "busy-pw")
            if why:
                errors.append(why)

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], threads_of(d.proc.pid))
            done.wait(0.005)  # a sampling rate, not a synchronisation

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(lib.IO_TIMEOUT * ROUNDS)
    done.set()
    sampler.join(lib.IO_TIMEOUT)
    total = CLIENTS * ROUNDS
    print("%d sessions from one address, %d failed; peak %d daemon threads" % (total, len(errors), peak[0]))
    assert len(errors) * 100 < total, errors[:5]
    assert peak[0] <= 200 + 32 + 8, peak[0]
    assert "to admit new ones" not in d.stderr(), "no busy client was closed to make room"


def try_login(port, source, user, password, order, tag):
    """A USER/PASS login from `source`; records (tag, answer) in `order` when the answer comes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))  # 30: a hang guard
    try:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"USER %s\r\nPASS %s\r\n" % (user.encode(), password.encode()))
        f.readline()
        reply = f.readline()
        order.append((tag, reply))
        s.sendall(b"QUIT\r\n")
        return reply
    finally:
        s.close()


def address_score(env, address):
    """The failure score of `address` in inetd mode's state_dir/penalties (0 when it has none)."""
    try:
        with open(env.state + "/penalties") as f:
            for line in f:
                w = line.split()
                if w[:2] == ["a", address]:
                    return float(w[2])
    except FileNotFoundError:
        pass
    return 0.0


def test_a_neighbours_old_password_does_not_slow_a_known_accounts_login(env):
    """A household behind one NAT: a device keeps alice's old password and fails again and again; bob logs in
    from the same address, as he did before. His answer must not wait behind her failures' slots: it comes
    while her next attempt is still waiting for its own (an order, not a time: her slot is 2 s away, and
    she took it before bob asked, as the shared record in state_dir shows: inetd mode under tcpserver)."""
    env.write_mbox("bob", lib.build_mbox(lib.tricky_messages(huge=False)[:1]))
    logfile = env.srv + "/pop3d.log"
    env.write_conf(log=logfile)
    env.fix_perms()
    ts = lib.TcpServer(env)
    home = "127.0.4.4"
    order = []
    assert try_login(ts.port, home, "bob", PASSWORDS["bob"], order, "bob").startswith(b"+OK")
    # The device's failures: a first wave of three at once, then one more (which sets the address's spacing).
    wave = [threading.Thread(target=try_login, args=(ts.port, home, "alice", "old-pw", order, "typo"))
            for _ in range(3)]
    for t in wave:
        t.start()
    for t in wave:
        t.join(30)
    try_login(ts.port, home, "alice", "old-pw", order, "typo")
    assert 3.5 < address_score(env, home) < 4.5, open(env.state + "/penalties").read()
    # The next one takes its slot (2 s after the last; its attempt counted at once): bob logs in meanwhile.
    waiting = threading.Thread(target=try_login, args=(ts.port, home, "alice", "old-pw", order, "waiting"))
    waiting.start()
    lib.poll_until(lambda: (address_score(env, home) > 4.5, address_score(env, home)), "her next slot taken")
    reply = try_login(ts.port, home, "bob", PASSWORDS["bob"], order, "bob again")
    waiting.join(30)
    tags = [t for t, _ in order]
    assert reply.startswith(b"+OK"), (reply, open(logfile).read())
    assert tags.index("bob again") < tags.index("waiting"), order
    assert all(r.startswith(b"-ERR [AUTH]") for t, r in order if t in ("typo", "waiting")), order


def scram_user(env, name, password):
    r = subprocess.run([lib.POP3D_BIN, "-P", name], input=(password + "\n").encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    env.add_user_line(r.stdout.decode())


def wrong_attempt(port, source, mechanism, user):
    """One wrong login for `user` by `mechanism` from `source`; returns (seconds from the credentials to the
    answer, the answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))  # a hang guard
    try:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")

        def say(line):
            s.sendall(line.encode() + b"\r\n")
            return f.readline()

        if mechanism == "USER":
            assert say("USER " + user).startswith(b"+OK")
            started = time.monotonic()
            reply = say("PASS wrong-password")
        elif mechanism == "PLAIN":
            started = time.monotonic()
            reply = say("AUTH PLAIN " + b64("\0%s\0wrong-password" % user))
        elif mechanism == "LOGIN":
            assert say("AUTH LOGIN " + b64(user)).startswith(b"+ ")
            started = time.monotonic()
            reply = say(b64("wrong-password"))
        else:
            c = scramp.ScramClient(["SCRAM-SHA-256"], user, "wrong-password")
            first = say("AUTH SCRAM-SHA-256 " + b64(c.get_client_first()))
            assert first.startswith(b"+ "), first
            c.set_server_first(base64.b64decode(first[2:].strip()).decode())
            started = time.monotonic()
            reply = say(b64(c.get_client_final()))
        return time.monotonic() - started, reply
    finally:
        s.close()


@pytest.mark.parametrize("mechanism", ["USER", "PLAIN", "LOGIN", "SCRAM-SHA-256"])
def test_wrong_passwords_for_one_account_are_spaced_whichever_way_they_arrive(env, mechanism):
    """Five wrong passwords for one account, each from an address of its own (so only the account's record
    can space them): every way of logging in names the account in the log, with the reason, and the fifth
    answer waits for the account's slot (before: SCRAM's failures were charged to nobody and all came back
    at once). A lower bound only: a busy machine adds time, never removes it."""
    scram_user(env, "erin", "Erin-scram.256")
    d = env.start()
    took = [wrong_attempt(d.port, "127.0.5.%d" % (i + 1), mechanism, "erin") for i in range(5)]
    assert all(r.startswith(b"-ERR [AUTH]") for _, r in took), took
    # The daemon's log is read by a thread of this test: a line the daemon wrote before its answer may not
    # have been read yet when the answer has.
    lib.poll_until(lambda: (d.stderr().count('login failed for "erin": wrong password') == 5, d.stderr()),
                   "five failed logins for erin in the log")
    # With four failures on record the account's answers leave at least 1.5 s apart (0.5 s per failure,
    # counted from the slot before); without the account's record each answer took its own 0.5 s.
    assert took[4][0] >= 1.5, [round(t, 2) for t, _ in took]
