# Interop tests with Python's poplib over TLS (the ssl module, i.e. OpenSSL): POP3_SSL full dialogue, STLS with CAPA
# before and after, SASL EXTERNAL with client certificates, and certificate checks against the test CA.
import base64
import poplib
import socket
import ssl

import pytest

import interop_lib as lib
from interop_lib import PASSWORDS


def caps(p):
    return {k.upper(): v for k, v in p.capa().items()}


def check_full_dialogue(p, messages, env):
    exp = [lib.to_wire(m) for m in messages]
    assert p.user("alice").startswith(b"+OK")
    assert p.pass_(PASSWORDS["alice"]).startswith(b"+OK")
    assert p.stat() == (len(exp), sum(map(len, exp)))
    assert p.list()[1] == [b"%d %d" % (i, len(w)) for i, w in enumerate(exp, 1)]
    uids = p.uidl()[1]
    assert len({u.split()[1] for u in uids}) == len(exp)
    for i, w in enumerate(exp, 1):
        assert lib.poplib_raw_multi(p, "RETR %d" % i)[1] == w, "RETR %d over TLS differs from the mbox" % i
    assert lib.poplib_raw_multi(p, "TOP 6 2")[1] == lib.top_expected(exp[5], 2)
    assert p.dele(2).startswith(b"+OK")
    assert p.dele(len(exp)).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    kept = messages[:1] + messages[2:-1]
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in kept))


def test_pop3_ssl_full_dialogue(tls_server, pki, messages, env):
    p = lib.pop_ssl(tls_server.tls_port, pki.context())
    try:
        assert p.getwelcome().startswith(b"+OK")
        assert p.sock.version() in ("TLSv1.3", "TLSv1.2"), p.sock.version()
        assert p.sock.selected_alpn_protocol() is None  # none offered, none chosen
        c = caps(p)
        assert "STLS" not in c and "USER" in c and "PLAIN" in c.get("SASL", []), c
        check_full_dialogue(p, messages, env)
    finally:
        p.close()


def test_pop3_ssl_with_alpn_pop3(tls_server, pki):
    ctx = pki.context()
    ctx.set_alpn_protocols(["pop3"])
    p = lib.pop_ssl(tls_server.tls_port, ctx)
    try:
        assert p.sock.selected_alpn_protocol() == "pop3"
        p.user("alice")
        assert p.pass_(PASSWORDS["alice"]).startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()


def test_stls_capa_before_and_after(tls_server, pki, messages, env):
    p = tls_server.pop()
    try:
        before = caps(p)
        assert "STLS" in before and "USER" not in before, before
        assert "SASL" not in before, "no SCRAM keys here, no PLAIN before TLS: %r" % before
        with pytest.raises(poplib.error_proto) as e:
            p.user("alice")
        assert e.value.args[0].startswith(b"-ERR [AUTH]"), e.value.args
        assert p.stls(pki.context()).startswith(b"+OK")
        assert p.sock.version() == "TLSv1.3"
        after = caps(p)
        assert "STLS" not in after and "USER" in after, after
        assert after.get("SASL") == ["PLAIN", "LOGIN"], after
        check_full_dialogue(p, messages, env)
    finally:
        p.close()


def test_stls_auth_plain(tls_server, pki, messages):
    p = tls_server.pop()
    try:
        p.stls(pki.context())
        r = lib.auth_sasl(p, "PLAIN", base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode()).decode())
        assert r.startswith(b"+OK maildrop has %d messages" % len(messages)), r
        assert lib.poplib_raw_multi(p, "RETR 4")[1] == lib.to_wire(messages[3])
        p.quit()
    finally:
        p.close()


def test_certificate_of_the_server_is_checked(tls_server, pki):
    # a client trusting only another CA refuses the server: on the TLS port and after STLS
    ctx = ssl.create_default_context(cafile=pki.other_ca()[0])
    with pytest.raises(ssl.SSLCertVerificationError):
        lib.pop_ssl(tls_server.tls_port, ctx)
    p = tls_server.pop()
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            p.stls(ctx)
    finally:
        try:
            p.close()
        except OSError:  # the failed handshake already closed the socket
            pass
    # a name the certificate does not hold
    sock = socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=lib.IO_TIMEOUT)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            pki.context().wrap_socket(sock, server_hostname="mail.example.org")
    finally:
        sock.close()


def test_external_with_client_certificate(env, pki, messages):
    env.write_mbox("alice", lib.build_mbox(messages))
    env.use_tls(pki, client_ca=True, plaintext_auth="no")
    server = env.start(listen=("127.0.0.1:0 tls",))
    p = lib.pop_ssl(server.tls_port, pki.context(pki.client("alice")))
    try:
        c = caps(p)
        assert "EXTERNAL" in c.get("SASL", []), c
        r = lib.auth_sasl(p, "EXTERNAL", "=")
        assert r.startswith(b"+OK maildrop has %d messages" % len(messages)), r
        exp = [lib.to_wire(m) for m in messages]
        assert p.stat() == (len(exp), sum(map(len, exp)))
        for i, w in enumerate(exp, 1):
            assert lib.poplib_raw_multi(p, "RETR %d" % i)[1] == w
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    # CN=alice, but issued by a CA the server does not trust: the handshake fails (with TLS 1.3 the
    # client learns it at its first read, i.e. when poplib reads the greeting)
    with pytest.raises(ssl.SSLError) as e:
        p = lib.pop_ssl(server.tls_port, pki.context(pki.client("alice", foreign=True)))
        try:
            p.user("alice")
        finally:
            p.close()
    assert "ALERT" in (e.value.reason or ""), e.value  # a TLS alert (unknown_ca), not a silent close
    # no certificate at all: connected, but no EXTERNAL
    p = lib.pop_ssl(server.tls_port, pki.context())
    try:
        assert "EXTERNAL" not in caps(p).get("SASL", [])
        with pytest.raises(poplib.error_proto) as e:
            lib.auth_sasl(p, "EXTERNAL", "=")
        # an unoffered mechanism is no credentials failure (RFC 3206): no [AUTH]
        assert e.value.args[0] == b"-ERR mechanism EXTERNAL needs a verified TLS client certificate", e.value.args
    finally:
        p.close()
    lib.assert_mbox(env.read_mbox("alice"), lib.build_mbox(messages))


@pytest.mark.parametrize("where", ["implicit", "stls"])
def test_quit_ends_tls_with_close_notify(tls_server, pki, where):
    # OpenSSL's view (the Rust tests check it with rustls): with suppress_ragged_eofs=False a TCP close without
    # close_notify raises SSLEOFError; after QUIT the reads must end cleanly instead
    sock = socket.create_connection(("127.0.0.1", tls_server.tls_port if where == "implicit" else tls_server.port),
                                    timeout=lib.IO_TIMEOUT)
    if where == "stls":
        f = sock.makefile("rb")
        assert lib.read_reply_line(f).startswith(b"+OK")
        sock.sendall(b"STLS\r\n")
        assert lib.read_reply_line(f).startswith(b"+OK")
        f.close()
    s = pki.context().wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=False)
    try:
        s.sendall(b"QUIT\r\n" if where == "stls" else b"CAPA\r\nQUIT\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)  # SSLEOFError here: no close_notify
            if not chunk:
                break
            got += chunk
        assert got.endswith(b"\r\n.\r\n+OK bye\r\n" if where == "implicit" else b"+OK bye\r\n"), got
        if where == "implicit":
            assert got.startswith(b"+OK POP3 server ready"), got
    finally:
        s.close()
