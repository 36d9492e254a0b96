# fetchmail in keep mode retrieves with `TOP n 99999999`, never RETR: a TOP whose line count reaches the end of the
# body sent the whole message, and counts as a retrieval in the session's log line (retr=), for Maildir's seen flag
# (new/ -> cur/) and for EXPIRE, exactly as RETR does; a TOP that stops short counts for none of them.
import os
import re

import interop_lib as lib
from test_fetchmail import fetchmail
from test_maildir import files, make_maildir


def session_lines(log, user):
    return [ln for ln in log.splitlines() if "session end: user=%s " % user in ln]


def test_fetchmail_whole_message_top_is_a_retrieval(env):
    messages = lib.tricky_messages(huge=False)
    root = make_maildir(env)
    for i, m in enumerate(messages):
        with open(os.path.join(root, "new", "17000000%02d.M%dP1.box" % (i, i)), "wb") as f:
            f.write(m)
    env.fix_perms()
    d = env.start()
    # A TOP that stops short of the end is no retrieval: the message stays new.
    p = d.login()
    _, lines, _ = p.top(1, 1)
    assert lines[-1] == b"Hello Alice,", lines[-3:]
    p.quit()
    lib.poll_until(lambda: (len(session_lines(d.stderr(), "alice")) == 1, d.stderr()), "session line")
    assert " retr=0/0 " in session_lines(d.stderr(), "alice")[0]
    assert len(os.listdir(os.path.join(root, "new"))) == len(messages)

    out = os.path.join(env.cli, "keep")
    r = fetchmail(env, d.port, True, out)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    assert b"TOP 1 99999999" in r.stdout and b"RETR" not in r.stdout, "fetchmail no longer uses TOP in keep mode"
    lib.assert_delivered(lib.delivered(out), messages, "fetchmail", added_header=b"Received")
    log = lib.poll_until(lambda: (len(session_lines(d.stderr(), "alice")) == 2, d.stderr()), "fetchmail's line")
    wire = sum(len(lib.to_wire(m)) for m in messages)
    assert " retr=%d/%d " % (len(messages), wire) in session_lines(log, "alice")[1], session_lines(log, "alice")
    assert os.listdir(os.path.join(root, "new")) == [], "every message fetched whole is seen (cur/)"
    cur = sorted(os.listdir(os.path.join(root, "cur")))
    assert len(cur) == len(messages) and all(re.search(r":2,S$", n) for n in cur), cur
    assert len(files(root)) == len(messages), "keep: nothing deleted"


def test_fetchmail_top_starts_expire(env):
    # EXPIRE 0: a message is removed at the QUIT of the session that first retrieved it, RETR or whole TOP.
    msgs = [lib.new_message(i, b"expire %d" % i) for i in range(1, 4)]
    env.write_mbox("alice", lib.build_mbox(msgs))
    env.write_conf(expire="0")
    env.fix_perms()
    d = env.start()
    out = os.path.join(env.cli, "keep")
    r = fetchmail(env, d.port, True, out)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    assert b"TOP 3 99999999" in r.stdout, r.stdout.decode(errors="replace")[-3000:]
    lib.assert_delivered(lib.delivered(out), msgs, "fetchmail", added_header=b"Received")
    lib.poll_until(lambda: ("3 messages expired (EXPIRE 0)" in d.stderr(), d.stderr()), "EXPIRE at QUIT")
    assert not env.read_mbox("alice"), "every message fetched whole expired at QUIT"
