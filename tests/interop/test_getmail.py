# Interop tests with getmail6 (SimplePOP3Retriever): Maildir and MDA_external destinations, keep/new-only and delete.
import os
import pwd
import sys

import interop_lib as lib
from interop_lib import PASSWORDS


def getmailrc(env, port, destination, read_all, delete, name):
    path = os.path.join(env.cli, name)
    with open(path, "w") as f:
        f.write("[retriever]\n"
                "type = SimplePOP3Retriever\n"
                "server = 127.0.0.1\n"
                "port = %d\n"
                "username = alice\n"
                "password = %s\n"
                "timeout = 10\n"
                "\n"
                "[destination]\n%s\n"
                "[options]\n"
                "verbose = 2\n"
                "read_all = %s\n"
                "delete = %s\n"
                "received = false\n"
                "delivered_to = false\n"
                % (port, PASSWORDS["alice"], destination, read_all, delete))
    os.chmod(path, 0o600)
    return path


def getmail(env, rc):
    gdir = os.path.join(env.cli, "getmaildir")
    os.makedirs(gdir, mode=0o700, exist_ok=True)
    # PYTHONPATH: getmail_race/sitecustomize.py mends getmail's lost SIGCHLD (see there).
    race = os.path.join(os.path.dirname(os.path.abspath(__file__)), "getmail_race")
    return lib.run_client([lib.need_tool("getmail"), "--getmaildir", gdir, "--rcfile", rc],
                          env={"HOME": env.cli, "PYTHONPATH": race})


def maildir_dest(env, name):
    md = os.path.join(env.cli, name)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    dest = "type = Maildir\npath = %s/\n" % md
    if lib.IS_ROOT:
        # getmail refuses to deliver to a maildir as root: it switches to `user`
        dest += "user = %s\n" % lib.RUN_AS
        os.chmod(env.cli, 0o711)
        uid = pwd.getpwnam(lib.RUN_AS).pw_uid
        for root, dirs, _ in os.walk(md):
            os.chown(root, uid, -1)
    return md, dest


def maildir_messages(md):
    """Messages in a maildir's new/, in delivery order (by mtime, then name)."""
    new = os.path.join(md, "new")
    names = [os.path.join(new, n) for n in os.listdir(new)]
    names.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))
    out = []
    for p in names:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def without_return_path(msg):
    """getmail's Maildir destination prepends `Return-Path: <sender>`; our messages have no envelope
    sender, so it is exactly `Return-Path: <unknown>`."""
    hdr, rest = lib.strip_first_header(msg, b"Return-Path")
    assert hdr == b"Return-Path: <unknown>\n", hdr
    return rest


def check(got, msgs, who):
    assert len(got) == len(msgs), "%s delivered %d messages, expected %d" % (who, len(got), len(msgs))
    # delivery order of a maildir is not reliable: match as multisets of exact contents
    exp = sorted(lib.to_lf(lib.to_wire(m)) for m in msgs)
    assert sorted(without_return_path(g) for g in got) == exp, "messages delivered by %s differ from the mbox" % who


def test_getmail_maildir_keep_new_only_then_delete(env):
    messages = lib.tricky_messages(huge=False)
    first = messages[:-1]
    mbox1 = lib.build_mbox(first)
    env.write_mbox("alice", mbox1)
    server = env.start()

    md, dest = maildir_dest(env, "Maildir1")
    rc = getmailrc(env, server.port, dest, "false", "false", "rc-keep")
    r = getmail(env, rc)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    check(maildir_messages(md), first, "getmail")
    lib.assert_mbox(env.read_mbox("alice"), mbox1)

    md2, dest2 = maildir_dest(env, "Maildir2")
    rc = getmailrc(env, server.port, dest2, "false", "false", "rc-keep2")
    r = getmail(env, rc)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert maildir_messages(md2) == [], "getmail fetched old mail again: UIDLs not stable?"

    new = messages[-1]
    env.append_mbox("alice", lib.mbox_entry(new))
    md3, dest3 = maildir_dest(env, "Maildir3")
    rc = getmailrc(env, server.port, dest3, "false", "false", "rc-keep3")
    r = getmail(env, rc)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    check(maildir_messages(md3), [new], "getmail")
    lib.assert_mbox(env.read_mbox("alice"), mbox1 + lib.mbox_entry(new))

    # read_all + delete: everything once more, then the server's mbox is empty
    md4, dest4 = maildir_dest(env, "Maildir4")
    rc = getmailrc(env, server.port, dest4, "true", "true", "rc-delete")
    r = getmail(env, rc)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    check(maildir_messages(md4), first + [new], "getmail (delete)")
    assert not env.read_mbox("alice"), "server mbox not empty after getmail's delete pass"


def test_getmail_mda_external(env):
    messages = lib.tricky_messages(huge=False)
    mbox = lib.build_mbox(messages)
    env.write_mbox("alice", mbox)
    server = env.start()
    out = os.path.join(env.cli, "mda-out")
    os.mkdir(out)
    dest = ("type = MDA_external\npath = %s\narguments = (%r, %r)\nunixfrom = false\n"
            % (sys.executable, lib.DELIVER, out))
    if lib.IS_ROOT:
        dest += "allow_root_commands = true\n"
    rc = getmailrc(env, server.port, dest, "true", "false", "rc-mda")
    r = getmail(env, rc)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    got = lib.delivered(out)
    assert len(got) == len(messages)
    for i, (g, m) in enumerate(zip(got, messages), 1):
        assert without_return_path(g) == lib.to_lf(lib.to_wire(m)), \
            "message %d delivered by getmail's MDA_external differs" % i
    lib.assert_mbox(env.read_mbox("alice"), mbox)
