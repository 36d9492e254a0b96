# Interop tests with mpop (GnuTLS) over TLS: STLS on the plaintext port (tls_starttls on) and implicit TLS on the
# TLS port (tls_starttls off), the server certificate checked against the test CA; keep with UIDLs, then delete.
import os

import pytest

import interop_lib as lib


def mpop(env, cafile, port, starttls, keep, outdir, host="127.0.0.1"):
    os.makedirs(outdir, exist_ok=True)
    tls = "tls on\ntls_starttls %s\ntls_trust_file %s\n" % ("on" if starttls else "off", cafile)
    rc = lib.mpop_rc(env, port, keep, "mda \"%s\"" % lib.mda_cmd(outdir), tls=tls, host=host)
    return lib.run_client([lib.need_tool("mpop"), "-C", rc, "--debug"], env={"HOME": env.cli, "TMPDIR": env.cli})


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout.decode(errors="replace")[-3000:],
                               r.stderr.decode(errors="replace")[-3000:])
    return r.stdout.decode(errors="replace")


@pytest.mark.parametrize("starttls", [True, False], ids=["stls", "implicit"])
def test_mpop_tls_keep_then_delete(env, pki, starttls):
    messages = lib.tricky_messages(huge=False)
    first = messages[:-1]
    mbox1 = lib.build_mbox(first)
    env.write_mbox("alice", mbox1)
    env.use_tls(pki, plaintext_auth="no")
    server = env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))
    port = server.port if starttls else server.tls_port

    out1 = os.path.join(env.cli, "run1")
    dbg = ok(mpop(env, pki.ca, port, starttls, True, out1))
    if starttls:
        assert "--> STLS" in dbg and dbg.index("--> STLS") < dbg.index("--> USER alice"), dbg[-3000:]
    else:
        assert "--> STLS" not in dbg, dbg[-3000:]
    assert "--> PASS" in dbg  # mpop logs the command; it went inside TLS (the server refuses it otherwise)
    lib.assert_delivered(lib.delivered(out1), first, "mpop over TLS")
    lib.assert_mbox(env.read_mbox("alice"), mbox1)

    # keep + only_new: nothing again
    out2 = os.path.join(env.cli, "run2")
    ok(mpop(env, pki.ca, port, starttls, True, out2))
    assert lib.delivered(out2) == [], "mpop fetched old mail again over TLS"
    lib.assert_mbox(env.read_mbox("alice"), mbox1)

    # a new message (the one without a final newline, so it stays last), then delete mode: only it is
    # fetched, and mpop deletes everything it has retrieved, i.e. all messages
    env.append_mbox("alice", lib.mbox_entry(messages[-1]))
    out3 = os.path.join(env.cli, "run3")
    ok(mpop(env, pki.ca, port, starttls, False, out3))
    lib.assert_delivered(lib.delivered(out3), [messages[-1]], "mpop over TLS")
    assert not env.read_mbox("alice"), "server mbox not empty after mpop's delete pass over TLS"


def test_mpop_tls_refuses_a_server_of_another_ca(env, pki, alice_mbox):
    env.use_tls(pki, plaintext_auth="no")
    server = env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))
    out = os.path.join(env.cli, "run")
    r = mpop(env, pki.other_ca()[0], server.tls_port, False, True, out)
    assert r.returncode != 0, r.stdout[-2000:]
    assert b"--> USER" not in r.stdout and b"--> PASS" not in r.stdout
    assert lib.delivered(out) == []
    lib.assert_mbox(env.read_mbox("alice"), alice_mbox)
