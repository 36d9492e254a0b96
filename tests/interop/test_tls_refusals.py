# Clients that cannot be served get a log line that says why, in words an operator can act on: TLS 1.0/1.1-only
# clients (c-client over STLS), no cipher suite or key exchange in common, a client refusing the server's
# certificate for the name it asked for (SNI), a client certificate from another CA, none at all for EXTERNAL, and
# plaintext on the TLS port. Each is a real openssl s_client (or a socket) against the daemon.
import socket

import pytest

import interop_lib as lib
from test_tls_openssl import crlf, s_client

OLD = ("-cipher", "DEFAULT@SECLEVEL=0")

CASES = {
    "tls1.0": (OLD + ("-tls1",), "the client offers at most TLS 1.0; pop3d speaks TLS 1.2 and 1.3 only"),
    "tls1.1": (OLD + ("-tls1_1",), "the client offers at most TLS 1.1; pop3d speaks TLS 1.2 and 1.3 only"),
    "cbc-cipher": (("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"), "no cipher suite in common"),
    "rsa-kx": (("-tls1_2", "-cipher", "AES128-GCM-SHA256"), "no key exchange in common"),
    "sni": (("-servername", "mail.example.org", "-verify_hostname", "mail.example.org"),
            "the client refused the server's certificate (alert BadCertificate); it asked for `mail.example.org`, "
            "which the certificate does not name"),
}


@pytest.fixture
def server(env, alice_mbox, pki):
    env.use_tls(pki, client_ca=True, plaintext_auth="no")
    return env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))


def wait_log(server, text):
    return lib.poll_until(lambda: (text in server.stderr(), server.stderr()), "log line %r" % text)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("where", ["implicit", "stls"])
def test_refused_handshakes_say_why(server, pki, case, where):
    args, text = CASES[case]
    port = server.tls_port if where == "implicit" else server.port
    extra = () if where == "implicit" else ("-starttls", "pop3")
    r = s_client(pki, port, *(extra + args), stdin=crlf("QUIT"))
    err = r.stderr.decode(errors="replace")
    if case.startswith("tls1.") and ("no protocols available" in err or "unknown option" in err.lower()):
        pytest.skip("the local openssl cannot offer %s: %s" % (case, err.strip()[-300:]))
    assert r.returncode != 0 and b"+OK bye" not in r.stdout, (r.stdout, err)
    line = wait_log(server, text).split(text)[0].rsplit("\n", 1)[-1]
    assert "TLS with 127.0.0.1:" in line and "failed: " in line, line
    assert "end=TlsError" in wait_log(server, "end=TlsError")


def test_client_certificates_refused_or_missing(server, pki):
    cert, key = pki.client("alice", foreign=True)
    r = s_client(pki, server.tls_port, "-tls1_2", "-cert", cert, "-key", key, stdin=crlf("QUIT"))
    assert r.returncode != 0 and b"+OK bye" not in r.stdout, r.stderr
    wait_log(server, "the client's certificate was refused (UnknownIssuer): it must be issued by tls_client_ca")
    # No certificate at all: the handshake is fine (PLAIN still works), EXTERNAL is refused and logged.
    r = s_client(pki, server.tls_port, "-quiet", stdin=crlf("AUTH EXTERNAL =", "QUIT"))
    assert b"-ERR mechanism EXTERNAL needs a verified TLS client certificate" in r.stdout, r.stdout
    wait_log(server, "AUTH EXTERNAL refused: no verified client certificate")


def test_plaintext_on_the_tls_port(server):
    sock = socket.create_connection(("127.0.0.1", server.tls_port), timeout=lib.IO_TIMEOUT)
    try:
        sock.sendall(b"USER alice\r\n")
        assert sock.recv(100)[:1] == b"\x15", "a TLS alert record"
    finally:
        sock.close()
    wait_log(server, 'the client spoke plaintext on a TLS port: "USER alice"')
