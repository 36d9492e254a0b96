# Interop tests of TLS in inetd mode under ucspi-tcp's tcpserver: `pop3d -i -s` (implicit TLS on stdin/stdout) with
# curl pop3s:// and poplib.POP3_SSL, and `pop3d -i` with STLS via poplib and curl --ssl-reqd; nothing on stderr.
import os
import poplib

import pytest

import interop_lib as lib
from interop_lib import PASSWORDS


def setup(env, pki, messages, client_ca=False):
    data = lib.build_mbox(messages)
    env.write_mbox("alice", data)
    logfile = os.path.join(env.srv, "pop3d.log")
    env.use_tls(pki, client_ca=client_ca, plaintext_auth="no", log=logfile)
    return data, logfile


def curl(pki, url, *extra):
    r = lib.run_client([lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "--cacert", pki.ca,
                        "-u", "alice:" + PASSWORDS["alice"]] + list(extra) + [url])
    assert r.returncode == 0, "%s -> rc %d, stderr %r" % (" ".join(r.args), r.returncode, r.stderr)
    return r.stdout


def check_log(logfile):
    # the sessions log to the file (the last one may still be closing when tcpserver is stopped: no count)
    with open(logfile) as f:
        log = f.read()
    assert "session end: user=alice peer=127.0.0.1" in log and "tls=TLSv1_3" in log, log
    return log


def test_tcpserver_implicit_tls(env, pki, messages):
    data, logfile = setup(env, pki, messages)
    ts = lib.TcpServer(env, "-s")
    url = "pop3s://127.0.0.1:%d" % ts.port
    assert curl(pki, url + "/") == b"".join(b"%d %d\r\n" % (i, len(lib.to_wire(m)))
                                            for i, m in enumerate(messages, 1))
    for i, m in enumerate(messages, 1):
        assert curl(pki, "%s/%d" % (url, i)) == lib.to_wire(m), "curl pop3s:// via tcpserver: message %d" % i
    lib.assert_mbox(env.read_mbox("alice"), data)
    # poplib: a full session with DELE, then a new connection (a new pop3d -i -s) sees the change
    p = lib.pop_ssl(ts.port, pki.context())
    try:
        caps = p.capa()
        assert "STLS" not in caps and "USER" in caps, caps
        p.user("alice")
        assert p.pass_(PASSWORDS["alice"]).startswith(b"+OK")
        assert lib.poplib_raw_multi(p, "RETR 6")[1] == lib.to_wire(messages[5])
        assert p.dele(1).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    assert curl(pki, url + "/1") == lib.to_wire(messages[1])
    ts.stop()
    assert ts.stderr() == b"", "pop3d -i -s wrote to stderr: %r" % ts.stderr()[:2000]
    check_log(logfile)
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in messages[1:]))


def test_tcpserver_stls(env, pki, messages):
    data, logfile = setup(env, pki, messages)
    ts = lib.TcpServer(env)
    p = poplib.POP3("127.0.0.1", ts.port, timeout=lib.IO_TIMEOUT)
    try:
        before = p.capa()
        assert "STLS" in before and "USER" not in before, before
        with pytest.raises(poplib.error_proto) as e:
            p.user("alice")
        assert e.value.args[0].startswith(b"-ERR [AUTH]"), e.value.args
        assert p.stls(pki.context()).startswith(b"+OK")
        after = p.capa()
        assert "STLS" not in after and "USER" in after and "PLAIN" in after.get("SASL", []), after
        p.user("alice")
        assert p.pass_(PASSWORDS["alice"]).startswith(b"+OK maildrop has %d messages" % len(messages))
        exp = [lib.to_wire(m) for m in messages]
        for i, w in enumerate(exp, 1):
            assert lib.poplib_raw_multi(p, "RETR %d" % i)[1] == w, "RETR %d via tcpserver + STLS" % i
        assert p.dele(len(exp)).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    kept = messages[:-1]
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in kept))
    # curl's STLS through the same tcpserver
    assert curl(pki, "pop3://127.0.0.1:%d/3" % ts.port, "--ssl-reqd") == lib.to_wire(messages[2])
    ts.stop()
    assert ts.stderr() == b"", "pop3d -i wrote to stderr: %r" % ts.stderr()[:2000]
    check_log(logfile)


def test_tcpserver_implicit_tls_external(env, pki, messages):
    data, logfile = setup(env, pki, messages, client_ca=True)
    ts = lib.TcpServer(env, "-s")
    p = lib.pop_ssl(ts.port, pki.context(pki.client("alice")))
    try:
        assert "EXTERNAL" in p.capa().get("SASL", [])
        r = lib.auth_sasl(p, "EXTERNAL", "=")
        assert r.startswith(b"+OK maildrop has %d messages" % len(messages)), r
        assert lib.poplib_raw_multi(p, "RETR 2")[1] == lib.to_wire(messages[1])
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    ts.stop()
    assert ts.stderr() == b"", "pop3d -i -s wrote to stderr: %r" % ts.stderr()[:2000]
    lib.assert_mbox(env.read_mbox("alice"), data)
