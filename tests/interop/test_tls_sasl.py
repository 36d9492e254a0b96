# Interop tests of SASL SCRAM-SHA-256 (RFC 5802, POP3 AUTH per RFC 5034) with a real client library, scramp
# (PyPI), over implicit TLS, after STLS and over plaintext loopback; the account's keys are made by `pop3d -P`.
#
# SCRAM-SHA-256-PLUS is not tested here: its channel binding is tls-exporter (RFC 9266), which scramp 1.5 lists
# among its unsupported channel binding types (ScramClient raises "not supported by Scramp"), and the ssl module
# of the Python running this suite (3.11) has no keying-material exporter (RFC 5705) to compute the binding data
# with. The -PLUS mechanism, a wrong binding and the downgrade check are covered by the Rust tests in
# tests/sasl.rs (scram_plus_binds_to_the_tls_channel), whose rustls client has the exporter.
import base64
import poplib
import subprocess

import pytest
import scramp

import interop_lib as lib

USER = "erin"
PASSWORD = "Erin-scram.256"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(line):
    assert line.startswith(b"+ "), line
    return base64.b64decode(line[2:], validate=True).decode()


@pytest.fixture
def scram_user(env, messages):
    """Adds `erin` with {SCRAM-SHA-256} keys made by `pop3d -P` and the tricky messages as her mbox."""
    r = subprocess.run([lib.POP3D_BIN, "-P", USER], input=(PASSWORD + "\n").encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode()
    assert line.startswith(USER + ":{SCRAM-SHA-256}4096,") and line.count("\n") == 1, line
    env.add_user_line(line)
    data = lib.build_mbox(messages)
    env.write_mbox(USER, data)
    return data


def scram_auth(p, password=PASSWORD, initial=True):
    """The RFC 5034 exchange: AUTH [client-first] -> + server-first -> client-final -> + server-final
    (v=, checked by scramp) -> empty line -> +OK. Returns the last answer; a -ERR raises poplib.error_proto."""
    c = scramp.ScramClient(["SCRAM-SHA-256"], USER, password)
    if initial:
        r = lib.auth_sasl(p, "SCRAM-SHA-256", b64(c.get_client_first()))
    else:
        assert lib.auth_sasl(p, "SCRAM-SHA-256") == b"+ "
        r = p._shortcmd(b64(c.get_client_first()))
    c.set_server_first(unb64(r))
    r = p._shortcmd(b64(c.get_client_final()))
    server_final = unb64(r)
    assert server_final.startswith("v="), server_final
    c.set_server_final(server_final)  # raises unless the server proved it knows the keys
    return p._shortcmd("")


def check_session(p, messages, env, data):
    exp = [lib.to_wire(m) for m in messages]
    assert p.stat() == (len(exp), sum(map(len, exp)))
    for i, w in enumerate(exp, 1):
        assert lib.poplib_raw_multi(p, "RETR %d" % i)[1] == w, "RETR %d after SCRAM differs from the mbox" % i
    assert p.quit().startswith(b"+OK")
    lib.assert_mbox(env.read_mbox(USER), data)


def sasl_mechs(p):
    return p.capa().get("SASL", [])


def tls_daemon(env, pki, mechanisms="SCRAM-SHA-256-PLUS, SCRAM-SHA-256, PLAIN, LOGIN"):
    """TLS, passwords only under TLS, and (erin's keys beside crypt accounts) the SCRAM mechanisms listed: `auto`
    would advertise SCRAM here only where PLAIN is not offered."""
    env.use_tls(pki, plaintext_auth="no", auth_mechanisms=mechanisms)
    return env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))


@pytest.mark.parametrize("where", ["implicit", "stls"])
def test_scram_over_tls(env, pki, scram_user, messages, where):
    server = tls_daemon(env, pki)
    if where == "implicit":
        p = lib.pop_ssl(server.tls_port, pki.context())
    else:
        p = server.pop()
        assert p.stls(pki.context()).startswith(b"+OK")
    try:
        assert {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"} <= set(sasl_mechs(p))
        r = scram_auth(p, initial=(where == "implicit"))
        assert r.startswith(b"+OK maildrop has %d messages" % len(messages)), r
        check_session(p, messages, env, scram_user)
    finally:
        p.close()


@pytest.mark.parametrize("plaintext_auth", ["default", "no"])
def test_scram_over_plaintext_loopback(env, pki, scram_user, messages, plaintext_auth):
    # default (loopback): everything allowed on 127.0.0.1, no TLS configured at all; auth_mechanisms = auto
    # advertises SCRAM without TLS (only erin has keys, but careful clients send no password in the clear). no: with
    # TLS configured but unused, SCRAM works without TLS (it never sends the password) while USER and PLAIN are
    # refused.
    if plaintext_auth == "default":
        server = env.start()
    else:
        server = tls_daemon(env, pki, mechanisms="auto")
    p = server.pop()
    try:
        mechs = sasl_mechs(p)
        if plaintext_auth == "no":
            assert mechs == ["SCRAM-SHA-256"], mechs
        else:
            assert mechs == ["SCRAM-SHA-256", "PLAIN", "LOGIN"], mechs
        r = scram_auth(p, initial=False)
        assert r.startswith(b"+OK maildrop has %d messages" % len(messages)), r
        check_session(p, messages, env, scram_user)
    finally:
        p.close()


@pytest.mark.parametrize("where", ["tls", "plaintext"])
def test_scram_wrong_password_fails(env, pki, scram_user, messages, where):
    server = tls_daemon(env, pki)
    p = lib.pop_ssl(server.tls_port, pki.context()) if where == "tls" else server.pop()
    try:
        with pytest.raises(poplib.error_proto) as e:
            scram_auth(p, password="Erin-wrong")
        assert e.value.args[0].startswith(b"-ERR [AUTH]"), e.value.args
        # the session stays in the AUTHORIZATION state: the right password works on the same connection
        r = scram_auth(p)
        assert r.startswith(b"+OK maildrop has %d messages" % len(messages)), r
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    lib.assert_mbox(env.read_mbox(USER), scram_user)
