# Interop tests with mpop: keep mode with UIDLs (only new mail on later runs) and delete mode, via MDA and mbox delivery.
import os

import interop_lib as lib


def mpop(env, port, keep, delivery):
    rc = lib.mpop_rc(env, port, keep, delivery)
    return lib.run_client([lib.need_tool("mpop"), "-C", rc, "--half-quiet"],
                          env={"HOME": env.cli, "TMPDIR": env.cli})


def test_mpop_mda_keep_then_delete(env):
    messages = lib.tricky_messages(huge=False)
    first = messages[:-1]
    mbox1 = lib.build_mbox(first)
    env.write_mbox("alice", mbox1)
    server = env.start()

    out1 = os.path.join(env.cli, "run1")
    os.mkdir(out1)
    r = mpop(env, server.port, True, "mda \"%s\"" % lib.mda_cmd(out1))
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))
    lib.assert_delivered(lib.delivered(out1), first, "mpop")
    lib.assert_mbox(env.read_mbox("alice"), mbox1)

    out2 = os.path.join(env.cli, "run2")
    os.mkdir(out2)
    r = mpop(env, server.port, True, "mda \"%s\"" % lib.mda_cmd(out2))
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))
    assert lib.delivered(out2) == [], "mpop fetched old mail again: UIDLs not stable?"

    new = lib.new_message(20)
    env.append_mbox("alice", lib.mbox_entry(new))
    mbox3 = env.read_mbox("alice")
    out3 = os.path.join(env.cli, "run3")
    os.mkdir(out3)
    r = mpop(env, server.port, True, "mda \"%s\"" % lib.mda_cmd(out3))
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))
    lib.assert_delivered(lib.delivered(out3), [new], "mpop")
    lib.assert_mbox(env.read_mbox("alice"), mbox3)

    # delete mode with only_new: only the newest message (no final newline) is fetched; mpop then deletes
    # it and every message it had already retrieved, i.e. all of them
    new2 = messages[-1]
    env.append_mbox("alice", lib.mbox_entry(new2))
    out4 = os.path.join(env.cli, "run4")
    os.mkdir(out4)
    r = mpop(env, server.port, False, "mda \"%s\"" % lib.mda_cmd(out4))
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))
    lib.assert_delivered(lib.delivered(out4), [new2], "mpop (delete mode)")
    assert not env.read_mbox("alice"), "server mbox not empty after mpop's delete pass"


def test_mpop_mbox_delivery_delete_all(env):
    messages = lib.tricky_messages(huge=False)
    env.write_mbox("alice", lib.build_mbox(messages))
    server = env.start()
    target = os.path.join(env.cli, "local.mbox")
    rc = lib.mpop_rc(env, server.port, False, "mbox %s" % target)
    r = lib.run_client([lib.need_tool("mpop"), "-C", rc, "--half-quiet", "--only-new=off"],
                       env={"HOME": env.cli, "TMPDIR": env.cli})
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))
    with open(target, "rb") as f:
        local = f.read()
    # mpop writes MBOXRD: parse it back and compare message by message (CRLF -> LF by mpop)
    got = [e["message"] for e in lib.parse_mbox(local)]
    assert len(got) == len(messages)
    for i, (g, m) in enumerate(zip(got, messages), 1):
        assert g == lib.to_lf(lib.to_wire(m)), "message %d in mpop's mbox differs" % i
    assert not env.read_mbox("alice"), "server mbox not empty after mpop deleted everything"
