# Interop tests with the curl command-line client (pop3:// URLs): list, retrieve, UIDL, TOP and delete.
import interop_lib as lib
from interop_lib import PASSWORDS


def curl(server, path="/", *extra, user="alice"):
    cmd = [lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "-u",
           "%s:%s" % (user, PASSWORDS[user])] + list(extra) + ["pop3://127.0.0.1:%d%s" % (server.port, path)]
    r = lib.run_client(cmd)
    assert r.returncode == 0, "%s -> rc %d, stderr %r" % (cmd, r.returncode, r.stderr)
    return r.stdout


def test_curl_list(server, messages):
    out = curl(server, "/")
    assert out == b"".join(b"%d %d\r\n" % (i, len(lib.to_wire(m))) for i, m in enumerate(messages, 1))


def test_curl_retrieve_each(server, messages):
    for i, m in enumerate(messages, 1):
        assert curl(server, "/%d" % i) == lib.to_wire(m), "curl pop3://.../%d differs from the mbox" % i


def test_curl_uidl_and_top(server, messages):
    out = curl(server, "/", "-X", "UIDL")
    lines = out.split(b"\r\n")
    assert lines[-1] == b""
    uids = [ln.split(b" ") for ln in lines[:-1]]
    assert [int(n) for n, _ in uids] == list(range(1, len(messages) + 1))
    assert len({u for _, u in uids}) == len(messages)
    top = curl(server, "/", "-X", "TOP 3 1")
    assert top == lib.top_expected(lib.to_wire(messages[2]), 1)


def test_curl_delete(server, env, messages):
    out = curl(server, "/1", "-X", "DELE", "-I")
    assert out == b""
    kept = messages[1:]
    # exactly message 1 is gone, the others are byte-identical
    lib.assert_mbox(env.read_mbox("alice"), b"".join(lib.mbox_entry(m) for m in kept))
    # the rest is still served, renumbered
    assert curl(server, "/") == b"".join(b"%d %d\r\n" % (i, len(lib.to_wire(m))) for i, m in enumerate(kept, 1))
    assert curl(server, "/1") == lib.to_wire(kept[0])


def test_curl_wrong_password_fails(server):
    r = lib.run_client([lib.need_tool("curl"), "-sS", "--max-time", str(lib.IO_TIMEOUT), "-u", "alice:wrong",
                        "pop3://127.0.0.1:%d/" % server.port])
    assert r.returncode == 67, (r.returncode, r.stderr)  # CURLE_LOGIN_DENIED
