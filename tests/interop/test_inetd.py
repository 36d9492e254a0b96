# Interop tests of inetd mode (pop3d -i): under ucspi-tcp's tcpserver and over plain pipes; nothing on stderr.
import os
import poplib
import select
import signal
import subprocess
import threading

import pytest

import interop_lib as lib
from interop_lib import PASSWORDS


def full_dialogue_poplib(p, messages):
    exp = [lib.to_wire(m) for m in messages]
    assert p.getwelcome().startswith(b"+OK")
    caps = {k.upper() for k in p.capa()}
    assert {"USER", "TOP", "UIDL"} <= caps, caps
    p.user("alice")
    assert p.pass_(PASSWORDS["alice"]).startswith(b"+OK")
    assert p.stat() == (len(exp), sum(map(len, exp)))
    assert p.list()[1] == [b"%d %d" % (i, len(w)) for i, w in enumerate(exp, 1)]
    uid = p.uidl()[1]
    assert len(uid) == len(exp) and len({u.split()[1] for u in uid}) == len(exp)
    for i, w in enumerate(exp, 1):
        assert lib.poplib_raw_multi(p, "RETR %d" % i)[1] == w
    assert lib.poplib_raw_multi(p, "TOP 3 2")[1] == lib.top_expected(exp[2], 2)
    assert p.noop().startswith(b"+OK")
    assert p.dele(1).startswith(b"+OK")
    assert p.dele(len(exp)).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    return messages[1:-1]


def test_tcpserver(env, messages):
    tcpserver = lib.need_tool("tcpserver")
    env.write_mbox("alice", lib.build_mbox(messages))
    logfile = os.path.join(env.srv, "pop3d.log")
    env.write_conf(log=logfile)
    env.fix_perms()
    errfile = os.path.join(env.cli, "tcpserver.stderr")
    # -1: print the bound port (so port 0 works); -q: tcpserver itself prints nothing;
    # -R/-H: no ident or DNS lookups. pop3d inherits tcpserver's stderr (a file we check).
    with open(errfile, "wb") as err:
        proc = subprocess.Popen([tcpserver, "-1", "-q", "-R", "-H", "-l", "localhost", "127.0.0.1", "0",
                                 lib.POP3D_BIN, "-i", "-f", env.conf],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True)
    env.cleanups.append(lambda: lib.kill_group(proc))
    conns = []
    try:
        ready, _, _ = select.select([proc.stdout], [], [], lib.START_TIMEOUT)
        assert ready, "tcpserver did not report its port"
        port = int(proc.stdout.readline().strip())
        p = poplib.POP3("127.0.0.1", port, timeout=lib.IO_TIMEOUT)
        conns.append(p)
        kept = full_dialogue_poplib(p, messages)
        after_first = env.read_mbox("alice")
        # a second connection: a new pop3d process sees the updated maildrop
        p = poplib.POP3("127.0.0.1", port, timeout=lib.IO_TIMEOUT)
        conns.append(p)
        p.user("alice")
        p.pass_(PASSWORDS["alice"])
        assert p.stat()[0] == len(kept)
        assert lib.poplib_raw_multi(p, "RETR 1")[1] == lib.to_wire(kept[0])
        p.quit()
    finally:
        for c in conns:
            c.close()
        lib.kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            lib.kill_group(proc)
            proc.wait()
        proc.stdout.close()
    with open(errfile, "rb") as f:
        err = f.read()
    assert err == b"", "pop3d -i wrote to stderr: %r" % err[:2000]
    assert os.path.exists(logfile) and os.path.getsize(logfile) > 0, "no log line written to %s" % logfile
    lib.assert_mbox(after_first, b"".join(lib.mbox_entry(m) for m in kept))


class PipeSession:
    def __init__(self, env, watchdog=20):
        self.proc = subprocess.Popen([lib.POP3D_BIN, "-i", "-f", env.conf],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.timer = threading.Timer(watchdog, self.proc.kill)  # hang guard
        self.timer.daemon = True
        self.timer.start()
        env.cleanups.append(self.kill)
        self.greeting = lib.read_reply_line(self.proc.stdout)

    def cmd(self, line):
        self.proc.stdin.write(line.encode() + b"\r\n")
        self.proc.stdin.flush()
        return lib.read_reply_line(self.proc.stdout)

    def multi(self, line):
        r = self.cmd(line)
        assert r.startswith(b"+OK"), (line, r)
        return lib.read_multiline(self.proc.stdout)

    def kill(self):
        self.timer.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rest = self.proc.stdout.read()
        err = self.proc.stderr.read()
        rc = self.proc.wait()
        self.timer.cancel()
        assert rc != -9, "pop3d -i hung (killed by the watchdog)"
        return rc, rest, err


@pytest.mark.parametrize("log", ["syslog", "file"])
def test_pipes_full_dialogue(env, messages, log):
    # syslog: there is no /dev/log listener here, pop3d must cope silently
    if log == "file":
        log = os.path.join(env.srv, "pop3d.log")
    env.write_mbox("alice", lib.build_mbox(messages))
    env.write_conf(log=log)
    env.fix_perms()
    exp = [lib.to_wire(m) for m in messages]
    s = PipeSession(env)
    assert s.greeting.startswith(b"+OK")
    assert s.cmd("USER alice").startswith(b"+OK")
    assert s.cmd("PASS " + PASSWORDS["alice"]).startswith(b"+OK")
    assert s.cmd("STAT") == b"+OK %d %d\r\n" % (len(exp), sum(map(len, exp)))
    assert s.multi("LIST") == b"".join(b"%d %d\r\n" % (i, len(w)) for i, w in enumerate(exp, 1))
    uidl = s.multi("UIDL").split(b"\r\n")[:-1]
    assert len({ln.split(b" ")[1] for ln in uidl}) == len(exp)
    for i, w in enumerate(exp, 1):
        assert s.multi("RETR %d" % i) == w, "RETR %d over pipes" % i
        assert s.multi("TOP %d 1" % i) == lib.top_expected(w, 1)
    assert s.cmd("DELE 2").startswith(b"+OK")
    assert s.cmd("RSET").startswith(b"+OK")
    assert s.cmd("DELE 3").startswith(b"+OK")
    assert s.cmd("QUIT").startswith(b"+OK")
    rc, rest, err = s.finish()
    assert rest == b"", "output after QUIT's answer: %r" % rest[:200]
    assert err == b"", "pop3d -i wrote to stderr: %r" % err[:2000]
    assert rc == 0, "pop3d -i exit status %d after QUIT" % rc
    kept = messages[:2] + messages[3:]
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in kept))


def test_pipes_eof_after_dele_removes_nothing(env, messages):
    data = lib.build_mbox(messages)
    env.write_mbox("alice", data)
    env.write_conf(log="syslog")
    env.fix_perms()
    s = PipeSession(env)
    s.cmd("USER alice")
    assert s.cmd("PASS " + PASSWORDS["alice"]).startswith(b"+OK")
    for i in range(1, len(messages) + 1):
        assert s.cmd("DELE %d" % i).startswith(b"+OK")
    rc, rest, err = s.finish()  # EOF on stdin: the client went away without QUIT
    assert err == b"", "pop3d -i wrote to stderr: %r" % err[:2000]
    lib.assert_mbox(env.read_mbox("alice"), data)
