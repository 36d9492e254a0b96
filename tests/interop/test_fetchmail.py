# Interop tests with fetchmail: keep+UIDL (only new mail fetched on later runs), then fetch-and-delete.
import os

import interop_lib as lib
from interop_lib import PASSWORDS


def fetchmail(env, port, keep, outdir, tls="sslproto '' no sslcertck", user="alice", password=None):
    """One fetchmail run for `user` (alice) on `port`, delivering through deliver.py into `outdir`; `tls` holds
    the rcfile's TLS options (plaintext by default). Its UIDL file lives in cli/fmhome across runs."""
    os.makedirs(outdir, exist_ok=True)
    home = os.path.join(env.cli, "fmhome")
    os.makedirs(home, mode=0o700, exist_ok=True)
    rc = os.path.join(env.cli, "fetchmailrc")
    with open(rc, "w") as f:
        f.write("set no syslog\n"
                "set no bouncemail\n"
                "poll 127.0.0.1 protocol pop3 service %d auth password uidl timeout 10\n"
                "    user '%s' there with password '%s'\n"
                "    %s no rewrite\n"
                "    %s\n"
                "    mda \"%s\"\n"
                % (port, user, PASSWORDS[user] if password is None else password, tls,
                   "keep" if keep else "no keep fetchall", lib.mda_cmd(outdir)))
    os.chmod(rc, 0o600)
    cmd = [lib.need_tool("fetchmail"), "-v", "--nodetach", "-f", rc,
           "--idfile", os.path.join(home, ".fetchids"), "--pidfile", os.path.join(home, "fetchmail.pid")]
    return lib.run_client(cmd, env={"FETCHMAILHOME": home, "HOME": home})


def test_fetchmail_keep_uidl_then_delete(env):
    messages = lib.tricky_messages(huge=False)
    # every tricky message except the one lacking a final newline, which is delivered later (it must be last)
    first = messages[:-1]
    mbox1 = lib.build_mbox(first)
    env.write_mbox("alice", mbox1)
    server = env.start()

    out1 = os.path.join(env.cli, "run1")
    r = fetchmail(env, server.port, True, out1)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    lib.assert_delivered(lib.delivered(out1), first, "fetchmail", added_header=b"Received")
    lib.assert_mbox(env.read_mbox("alice"), mbox1)

    # second run: nothing new (fetchmail exit code 1 = no mail)
    out2 = os.path.join(env.cli, "run2")
    r = fetchmail(env, server.port, True, out2)
    assert r.returncode == 1, (r.returncode, r.stderr.decode(errors="replace")[-3000:])
    assert lib.delivered(out2) == []
    lib.assert_mbox(env.read_mbox("alice"), mbox1)

    # a new delivery: only it is fetched
    new = messages[-1]
    env.append_mbox("alice", lib.mbox_entry(new))
    mbox3 = env.read_mbox("alice")
    all_msgs = first + [new]
    assert [e["message"] for e in lib.parse_mbox(mbox3)] == all_msgs
    out3 = os.path.join(env.cli, "run3")
    r = fetchmail(env, server.port, True, out3)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    lib.assert_delivered(lib.delivered(out3), [new], "fetchmail", added_header=b"Received")
    lib.assert_mbox(env.read_mbox("alice"), mbox3)

    # fetch-and-delete pass: everything is retrieved once more, then the mbox is empty
    out4 = os.path.join(env.cli, "run4")
    r = fetchmail(env, server.port, False, out4)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    lib.assert_delivered(lib.delivered(out4), all_msgs, "fetchmail", added_header=b"Received")
    assert not env.read_mbox("alice"), "mbox not empty after fetchmail's delete pass"

    out5 = os.path.join(env.cli, "run5")
    r = fetchmail(env, server.port, False, out5)
    assert r.returncode == 1 and lib.delivered(out5) == [], (r.returncode, r.stderr[-2000:])
