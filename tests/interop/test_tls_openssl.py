# Interop tests with the openssl s_client CLI: a POP3 dialogue through -starttls pop3 and through implicit TLS,
# old protocol versions and foreign ALPN names refused, and SASL EXTERNAL with a client certificate after STLS.
import base64
import re
import subprocess

import pytest

import interop_lib as lib
from interop_lib import PASSWORDS


def s_client(pki, port, *args, stdin=b""):
    """Run `openssl s_client` against 127.0.0.1:port feeding `stdin` (CRLF lines); with -ign_eof it reads until
    the server closes (QUIT or a refused handshake end it) instead of quitting at the end of its input, which
    would race with the answers. The timeout is a hang guard."""
    cmd = [lib.need_tool("openssl"), "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", pki.ca,
           "-verify_return_error", "-ign_eof"] + list(args)
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("openssl s_client hung: %s\nstdout %r\nstderr %r" % (" ".join(cmd), e.stdout, e.stderr))


def crlf(*lines):
    return b"".join(ln.encode() + b"\r\n" for ln in lines)


def expected_stat(messages):
    wire = [lib.to_wire(m) for m in messages]
    return b"+OK %d %d\r\n" % (len(wire), sum(map(len, wire)))


def dialogue_answers(out):
    lines = out.split(b"\r\n")
    assert lines[-1] == b"", "output does not end with CRLF: %r" % out[-200:]
    return lines[:-1]


def test_s_client_starttls_dialogue(tls_server, pki, messages, env, alice_mbox):
    r = s_client(pki, tls_server.port, "-starttls", "pop3", "-quiet", "-verify_hostname", "localhost",
                 stdin=crlf("CAPA", "USER alice", "PASS " + PASSWORDS["alice"], "STAT", "QUIT"))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert b"verify error" not in r.stderr, r.stderr
    ans = dialogue_answers(r.stdout)
    # CAPA after STLS: no STLS any more, USER and PLAIN offered now that the channel is encrypted
    i = ans.index(b".")
    caps = ans[1:i]
    assert ans[0] == b"+OK capability list follows", ans
    assert b"STLS" not in caps and b"USER" in caps, caps
    assert any(c.startswith(b"SASL ") and b"PLAIN" in c.split() for c in caps), caps
    assert ans[i + 1:] == [b"+OK send PASS",
                           b"+OK maildrop has %d messages (%d octets)" % (
                               len(messages), sum(len(lib.to_wire(m)) for m in messages)),
                           expected_stat(messages)[:-2],
                           b"+OK bye, 0 messages deleted"], ans
    lib.assert_mbox(env.read_mbox("alice"), alice_mbox)


def test_s_client_implicit_tls_dialogue_with_retr(tls_server, pki, messages, env):
    # -verify_ip: the certificate's IP SAN; a RETR read octet by octet, then DELE + QUIT removes that message
    r = s_client(pki, tls_server.tls_port, "-quiet", "-verify_ip", "127.0.0.1",
                 stdin=crlf("USER alice", "PASS " + PASSWORDS["alice"], "STAT", "RETR 3", "DELE 3", "QUIT"))
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = r.stdout
    assert out.startswith(b"+OK POP3 server ready"), out[:200]
    head = out.split(b"\r\n", 4)
    assert head[1] == b"+OK send PASS" and head[2].startswith(b"+OK maildrop has %d messages" % len(messages)), head
    assert head[3] + b"\r\n" == expected_stat(messages)
    rest = head[4]
    m = re.match(rb"\+OK (\d+) octets\r\n", rest)
    assert m, rest[:200]
    body_end = rest.index(b"\r\n.\r\n") + 5
    wire = lib.to_wire(messages[2])
    body = rest[m.end():body_end]
    assert int(m.group(1)) == len(wire)
    # undo byte-stuffing
    unstuffed = b"".join(ln[1:] if ln.startswith(b".") else ln
                         for ln in lib.split_lines(body[:-3]))
    assert unstuffed == wire, "RETR 3 through s_client differs from the mbox"
    tail = rest[body_end:].split(b"\r\n")
    assert tail[0].startswith(b"+OK") and tail[1].startswith(b"+OK bye, 1 message") and tail[2:] == [b""], tail
    kept = messages[:2] + messages[3:]
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in kept))


def test_s_client_tls_1_1_is_refused(tls_server, pki):
    r = s_client(pki, tls_server.tls_port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", stdin=crlf("QUIT"))
    err = r.stderr.decode(errors="replace")
    if "no protocols available" in err or "unknown option" in err.lower() or "-tls1_1" in err and "usage" in err.lower():
        pytest.skip("the local openssl cannot offer TLS 1.1: %s" % err.strip()[-300:])
    assert r.returncode != 0, r.stdout.decode(errors="replace")
    assert "alert" in err, err  # the server refuses with a TLS alert (not a silent close)
    assert b"+OK" not in r.stdout
    assert re.search(rb"Cipher is \(NONE\)", r.stdout), r.stdout.decode(errors="replace")
    # and on the STLS path too
    r = s_client(pki, tls_server.port, "-starttls", "pop3", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
                 stdin=crlf("QUIT"))
    assert r.returncode != 0 and "alert" in r.stderr.decode(errors="replace"), r.stderr


def test_s_client_tls_1_2_is_accepted(tls_server, pki):
    r = s_client(pki, tls_server.tls_port, "-tls1_2", "-brief", stdin=crlf("QUIT"))
    assert r.returncode == 0, r.stderr
    assert b"Protocol version: TLSv1.2" in r.stderr, r.stderr
    assert r.stdout.startswith(b"+OK POP3 server ready") and b"+OK bye" in r.stdout, r.stdout


@pytest.mark.parametrize("where", ["implicit", "stls"])
def test_s_client_alpn(tls_server, pki, where):
    port = tls_server.tls_port if where == "implicit" else tls_server.port
    extra = () if where == "implicit" else ("-starttls", "pop3")
    r = s_client(pki, port, "-alpn", "imap", *extra, stdin=crlf("QUIT"))
    assert r.returncode != 0, r.stdout.decode(errors="replace")
    # RFC 7301: no_application_protocol (120)
    assert b"alert no application protocol" in r.stderr and b"alert number 120" in r.stderr, r.stderr
    assert b"+OK POP3" not in r.stdout
    r = s_client(pki, port, "-alpn", "imap,pop3", *extra, stdin=crlf("QUIT"))
    assert r.returncode == 0, r.stderr
    assert b"ALPN protocol: pop3" in r.stdout, r.stdout.decode(errors="replace")
    assert b"Verification: OK" in r.stdout
    assert b"+OK bye" in r.stdout, r.stdout.decode(errors="replace")


def test_s_client_external_after_stls(env, pki, messages):
    env.write_mbox("alice", lib.build_mbox(messages))
    env.use_tls(pki, client_ca=True, plaintext_auth="no")
    server = env.start()
    cert, key = pki.client("alice")
    r = s_client(pki, server.port, "-starttls", "pop3", "-quiet", "-cert", cert, "-key", key,
                 stdin=crlf("CAPA", "AUTH EXTERNAL =", "STAT", "QUIT"))
    assert r.returncode == 0, r.stderr
    ans = dialogue_answers(r.stdout)
    i = ans.index(b".")
    assert b"SASL PLAIN LOGIN EXTERNAL" in ans[1:i], ans
    assert ans[i + 1].startswith(b"+OK maildrop has %d messages" % len(messages)), ans
    assert ans[i + 2] + b"\r\n" == expected_stat(messages)
    assert ans[i + 3].startswith(b"+OK bye"), ans
    # the continuation form, naming the authorization identity (= the certificate's CN)
    r = s_client(pki, server.port, "-starttls", "pop3", "-quiet", "-cert", cert, "-key", key,
                 stdin=crlf("AUTH EXTERNAL", base64.b64encode(b"alice").decode(), "QUIT"))
    ans = dialogue_answers(r.stdout)
    assert ans[0] == b"+ " and ans[1].startswith(b"+OK maildrop") and ans[2].startswith(b"+OK bye"), ans
    # a certificate with CN=alice from a CA the server does not trust: the handshake is refused
    fcert, fkey = pki.client("alice", foreign=True)
    r = s_client(pki, server.port, "-starttls", "pop3", "-quiet", "-cert", fcert, "-key", fkey,
                 stdin=crlf("AUTH EXTERNAL =", "QUIT"))
    assert b"+OK" not in r.stdout, r.stdout
    assert b"alert" in r.stderr, r.stderr
