# Interop tests with curl over TLS: pop3s:// (implicit TLS), pop3:// with --ssl-reqd (STLS), and a plaintext
# login that plaintext_auth = no must refuse. The server certificate is checked against the test CA.
import interop_lib as lib
from interop_lib import PASSWORDS


def curl(pki, url, *extra, user="alice", password=None):
    cmd = [lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "--cacert", pki.ca,
           "-u", "%s:%s" % (user, PASSWORDS[user] if password is None else password)] + list(extra) + [url]
    return lib.run_client(cmd)


def ok(r):
    assert r.returncode == 0, "%s -> rc %d, stderr %r" % (" ".join(r.args), r.returncode, r.stderr)
    return r.stdout


def listing(messages):
    return b"".join(b"%d %d\r\n" % (i, len(lib.to_wire(m))) for i, m in enumerate(messages, 1))


def test_curl_pop3s_list_and_retrieve(tls_server, pki, messages, env, alice_mbox):
    base = "pop3s://127.0.0.1:%d" % tls_server.tls_port
    assert ok(curl(pki, base + "/")) == listing(messages)
    for i, m in enumerate(messages, 1):
        assert ok(curl(pki, "%s/%d" % (base, i))) == lib.to_wire(m), "curl pop3s://.../%d differs from the mbox" % i
    # the same by the name in the certificate (DNS SAN) instead of its IP SAN
    assert ok(curl(pki, "pop3s://localhost:%d/3" % tls_server.tls_port,
                   "--resolve", "localhost:%d:127.0.0.1" % tls_server.tls_port)) == lib.to_wire(messages[2])
    lib.assert_mbox(env.read_mbox("alice"), alice_mbox)


def test_curl_pop3s_rejects_an_untrusted_certificate(tls_server, pki):
    # trusting only another CA, curl must refuse the server (CURLE_PEER_FAILED_VERIFICATION): the
    # certificate checks of the other tests are real
    r = lib.run_client([lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "--capath", "/nonexistent",
                        "--cacert", pki.other_ca()[0],
                        "-u", "alice:" + PASSWORDS["alice"], "pop3s://127.0.0.1:%d/" % tls_server.tls_port])
    assert r.returncode == 60, (r.returncode, r.stderr)


def test_curl_stls_retrieve_and_delete(tls_server, pki, messages, env):
    base = "pop3://127.0.0.1:%d" % tls_server.port
    assert ok(curl(pki, base + "/", "--ssl-reqd")) == listing(messages)
    for i, m in enumerate(messages, 1):
        assert ok(curl(pki, "%s/%d" % (base, i), "--ssl-reqd")) == lib.to_wire(m), \
            "curl --ssl-reqd pop3://.../%d differs from the mbox" % i
    # DELE through STLS: exactly message 2 is gone, the rest byte-identical
    assert ok(curl(pki, base + "/2", "--ssl-reqd", "-X", "DELE", "-I")) == b""
    kept = messages[:1] + messages[2:]
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in kept))
    assert ok(curl(pki, base + "/", "--ssl-reqd")) == listing(kept)


def test_curl_plaintext_login_refused_without_tls(tls_server, pki, env, alice_mbox, messages):
    # plaintext_auth = no: USER and PLAIN are neither offered nor accepted before STLS, so curl cannot log in
    r = curl(pki, "pop3://127.0.0.1:%d/1" % tls_server.port, "-v")
    assert r.returncode == 67, (r.returncode, r.stderr)  # CURLE_LOGIN_DENIED
    assert r.stdout == b""
    assert b"PASS " not in r.stderr, "curl sent a password in clear text: %r" % r.stderr
    # curl's own STLS attempt (--ssl: use TLS when offered) logs in on the same port
    assert ok(curl(pki, "pop3://127.0.0.1:%d/1" % tls_server.port, "--ssl")) == lib.to_wire(messages[0])
    lib.assert_mbox(env.read_mbox("alice"), alice_mbox)
