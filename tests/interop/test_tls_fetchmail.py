# Interop tests with fetchmail over TLS: --ssl on the implicit-TLS port and --sslproto tls1.2+ without --ssl
# (fetchmail's way to demand STLS) on the plaintext port, certificates checked against the test CA; keep+UIDL.
import os

import pytest

import interop_lib as lib
import test_fetchmail as plain_fetchmail


def fetchmail(env, cafile, port, tls_opts, outdir, keep=True):
    # fetchmail checks the host name against the certificate's DNS names only (no IP SANs): the
    # certificate is for localhost, the connection goes to 127.0.0.1
    tls = "%s sslcertfile '%s' sslcertck sslcommonname localhost" % (tls_opts, cafile)
    return plain_fetchmail.fetchmail(env, port, keep, outdir, tls=tls)


@pytest.mark.parametrize("mode", ["implicit", "stls"])
def test_fetchmail_tls_keep_then_nothing_new(env, pki, mode):
    messages = lib.tricky_messages(huge=False)
    data = lib.build_mbox(messages)
    env.write_mbox("alice", data)
    env.use_tls(pki, plaintext_auth="no")
    server = env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))
    if mode == "implicit":
        port, opts = server.tls_port, "ssl"
    else:
        port, opts = server.port, "sslproto 'tls1.2+'"

    out1 = os.path.join(env.cli, "run1")
    r = fetchmail(env, pki.ca, port, opts, out1)
    log = r.stderr.decode(errors="replace") + r.stdout.decode(errors="replace")
    assert r.returncode == 0, log[-3000:]
    assert "SSL/TLS: using protocol TLSv1.3" in log, log[-3000:]
    if mode == "stls":
        assert "POP3> STLS" in log, "fetchmail did not use STLS: " + log[-3000:]
        assert log.index("POP3> STLS") < log.index("POP3> USER alice")
    else:
        assert "POP3> STLS" not in log
    lib.assert_delivered(lib.delivered(out1), messages, "fetchmail", added_header=b"Received")
    lib.assert_mbox(env.read_mbox("alice"), data)

    # again: nothing new (exit code 1 = no mail), the mbox untouched
    out2 = os.path.join(env.cli, "run2")
    r = fetchmail(env, pki.ca, port, opts, out2)
    assert r.returncode == 1, (r.returncode, r.stderr.decode(errors="replace")[-3000:])
    assert lib.delivered(out2) == []
    lib.assert_mbox(env.read_mbox("alice"), data)


def test_fetchmail_stls_refuses_an_untrusted_server(env, pki):
    # fetchmail trusting only another CA must not log in (and so must not send the password)
    env.write_mbox("alice", lib.build_mbox(lib.tricky_messages(huge=False)))
    env.use_tls(pki, plaintext_auth="no")
    server = env.start()
    out = os.path.join(env.cli, "run")
    r = fetchmail(env, pki.other_ca()[0], server.port, "sslproto 'tls1.2+'", out)
    log = r.stderr.decode(errors="replace") + r.stdout.decode(errors="replace")
    assert r.returncode not in (0, 1), log[-3000:]
    assert "POP3> PASS" not in log and "POP3> USER" not in log, log[-3000:]
    assert lib.delivered(out) == []
