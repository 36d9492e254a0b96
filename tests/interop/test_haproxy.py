# HAProxy for real (Debian's haproxy, etc/haproxy/haproxy.cfg as shipped, addresses through its environment
# variables) in front of two pop3d daemons sharing one Maildir tree and state_dir: real clients through it over
# plaintext, STLS and implicit TLS passed through; the PROXY v2 header gives pop3d the real client address (clients
# bind 127.0.0.5 and up; HAProxy connects from 127.0.0.1) for its logs and failed logins; and one daemon stopped in
# the middle of a run of fetches while mail keeps arriving loses no message and fetches none twice.
import os
import signal
import socket
import subprocess
import threading

import pytest

import interop_lib as lib
from test_maildir import make_maildir

CONFIG = os.path.join(lib.REPO_ROOT, "etc", "haproxy", "haproxy.cfg")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Haproxy:
    """haproxy -db (foreground) on the shipped file; the addresses set through the environment variables it reads."""

    def __init__(self, env, a, b):
        self.port, self.tls_port = free_port(), free_port()
        addrs = {"POP3_BIND": "127.0.0.1:%d" % self.port, "POP3S_BIND": "127.0.0.1:%d" % self.tls_port,
                 "POP3D_A": "127.0.0.1:%d" % a.port, "POP3D_B": "127.0.0.1:%d" % b.port,
                 "POP3D_A_TLS": "127.0.0.1:%d" % a.tls_port, "POP3D_B_TLS": "127.0.0.1:%d" % b.tls_port}
        self.out = open(os.path.join(env.cli, "haproxy.out"), "wb")
        self.proc = subprocess.Popen([lib.need_tool("haproxy"), "-db", "-f", CONFIG], env=dict(os.environ, **addrs),
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        env.cleanups.append(self.stop)

        def listening():
            assert self.proc.poll() is None, self.output()
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=lib.IO_TIMEOUT).close()
                return True, None
            except ConnectionRefusedError as e:
                return False, e
        lib.poll_until(listening, "haproxy listening", timeout=lib.START_TIMEOUT)

    def output(self):
        with open(self.out.name, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            lib.kill_group(self.proc, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.out.close()


@pytest.fixture
def farm(env, pki):
    """Two daemons (a, b) on one Maildir tree and state_dir, trusting PROXY headers from 127.0.0.1, behind haproxy."""
    root = make_maildir(env)
    env.use_tls(pki, proxy_trusted="127.0.0.1", mailbox="maildir:" + os.path.join(env.srv, "maildir", "%u"))
    listen = ("127.0.0.1:0", "127.0.0.1:0 tls")
    a, b = env.start(listen=listen), env.start(listen=listen)
    return root, a, b, Haproxy(env, a, b)


def deliver(root, n):
    """A message into the Maildir as an MDA does: written in tmp/, renamed into new/."""
    name = "17%08d.M%dP%d.mx" % (n, n, os.getpid())
    tmp = os.path.join(root, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(lib.new_message(n, b"haproxy %d" % n))
    os.chmod(tmp, 0o644)
    os.rename(tmp, os.path.join(root, "new", name))


def mpop(env, ca, port, starttls, source, target, user="alice"):
    """mpop on its defaults (auth on), from `source` (a loopback address of its own), through haproxy."""
    rc = os.path.join(env.cli, "mpoprc-%s" % source)
    with open(rc, "w") as f:
        f.write("account default\nhost 127.0.0.1\nport %d\nsource_ip %s\nuser %s\npassword %s\ntls on\n"
                "tls_starttls %s\ntls_trust_file %s\ndelivery mbox %s\nkeep off\nuidls_file %s\n"
                % (port, source, user, lib.PASSWORDS[user], "on" if starttls else "off", ca, target,
                   os.path.join(env.cli, "uidls-%s" % source)))
    os.chmod(rc, 0o600)
    return lib.run_client([lib.need_tool("mpop"), "-C", rc, "--half-quiet"], env={"HOME": env.cli, "TMPDIR": env.cli})


def numbers(path):
    with open(path, "rb") as f:
        data = f.read()
    return [int(ln.split()[-1]) for ln in data.split(b"\n") if ln.startswith(b"Subject: haproxy ")]


def sessions(*daemons):
    return [ln for d in daemons for ln in d.stderr().splitlines() if "session end:" in ln and "user=-" not in ln]


def test_real_clients_through_haproxy_see_their_own_address(env, pki, farm):
    root, a, b, hap = farm
    for n in range(1, 4):
        deliver(root, n)
    env.fix_perms()
    # plaintext (curl, from 127.0.0.6: loopback, so plaintext logins are allowed for it)
    r = lib.run_client([lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "--interface", "127.0.0.6",
                        "-u", "alice:" + lib.PASSWORDS["alice"], "pop3://127.0.0.1:%d/1" % hap.port])
    assert r.returncode == 0 and r.stdout == lib.to_wire(lib.new_message(1, b"haproxy 1")), r.stderr
    # STLS and implicit TLS passed through: pop3d does the TLS with its own certificate
    for starttls, source in ((True, "127.0.0.7"), (False, "127.0.0.8")):
        target = os.path.join(env.cli, "mbox-%s" % source)
        open(target, "w").close()
        r = mpop(env, pki.ca, hap.port if starttls else hap.tls_port, starttls, source, target)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        deliver(root, 10 + starttls)
        env.fix_perms()
    got = numbers(os.path.join(env.cli, "mbox-127.0.0.7")) + numbers(os.path.join(env.cli, "mbox-127.0.0.8"))
    assert sorted(got) == [1, 2, 3, 11], got
    # failed logins carry the real address too
    for source in ("127.0.0.9", "127.0.0.10"):
        r = lib.run_client([lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "--interface", source,
                            "-u", "alice:wrong", "pop3://127.0.0.1:%d/" % hap.port])
        assert r.returncode == 67, (r.returncode, r.stderr)
    want = ["peer=127.0.0.%d:" % n for n in (6, 7, 8)]
    lines = lib.poll_until(lambda: (all(any(w in ln for ln in sessions(a, b)) for w in want), sessions(a, b)),
                           "the clients' own addresses in the session lines")
    assert all("(via proxy 127.0.0.1:" in ln for ln in lines), lines
    assert any("tls=no" in ln and "peer=127.0.0.6:" in ln for ln in lines), lines
    assert any("tls=TLSv1_3" in ln and "peer=127.0.0.7:" in ln for ln in lines), lines
    assert any("tls=TLSv1_3" in ln and "peer=127.0.0.8:" in ln for ln in lines), lines
    both = a.stderr() + b.stderr()
    for source in ("127.0.0.9", "127.0.0.10"):
        lib.poll_until(lambda: ("peer=%s:" % source in (a.stderr() + b.stderr()), both), "failed login from " + source)
    assert both.count("login failed for \"alice\"") >= 1
    assert "127.0.0.1" not in " ".join(ln.split("(via proxy")[0] for ln in sessions(a, b))


def test_a_daemon_stopped_mid_run_loses_and_repeats_nothing(env, pki, farm):
    """mpop fetches and deletes through haproxy again and again while mail arrives between runs; daemon a gets
    SIGTERM in the middle, while a session of bob's on it has retrieved and marked a message: that session still
    ends with its UPDATE, new connections go to b, and every message is fetched exactly once."""
    root, a, b, hap = farm
    bob = make_maildir(env, "bob")
    deliver(bob, 1000)
    env.fix_perms()
    sock = socket.create_connection(("127.0.0.1", hap.port), timeout=lib.IO_TIMEOUT, source_address=("127.0.0.11", 0))
    held = lib.RawConn(sock)
    assert held.login("bob").startswith(b"+OK maildrop has 1")
    lib.poll_until(lambda: ("login bob:" in a.stderr(), a.stderr()), "round robin: the first connection is a's")
    target = os.path.join(env.cli, "fetched")
    open(target, "w").close()
    total = 0
    for run in range(8):
        for _ in range(5):
            deliver(root, total)
            total += 1
        env.fix_perms()
        if run == 3:
            assert held.multi("RETR 1")[1] == lib.to_wire(lib.new_message(1000, b"haproxy 1000"))
            assert held.cmd("DELE 1").startswith(b"+OK")
            a.proc.send_signal(signal.SIGTERM)
            lib.poll_until(lambda: ("SIGTERM" in a.stderr(), a.stderr()), "a stopping")
            assert held.cmd("QUIT") == b"+OK bye, 1 messages deleted\r\n"
            held.close()
            assert a.proc.wait(timeout=lib.CLIENT_TIMEOUT) == 0
        r = mpop(env, pki.ca, hap.port if run % 2 else hap.tls_port, bool(run % 2), "127.0.0.5", target)
        assert r.returncode == 0, (run, r.stderr.decode(errors="replace"), hap.output()[-2000:])
    got = numbers(target)
    assert sorted(got) == list(range(total)), "lost or fetched twice: %s" % sorted(got)
    assert os.listdir(os.path.join(root, "new")) == [] and os.listdir(os.path.join(root, "cur")) == []
    assert os.listdir(os.path.join(bob, "new")) == [] and os.listdir(os.path.join(bob, "cur")) == []
    served = [sum("peer=127.0.0.5:" in ln for ln in sessions(d)) for d in (a, b)]
    assert served[0] >= 1 and served[1] >= 4 and sum(served) == 8, served
