# Interop over a Maildir (`mailbox = maildir:...`): poplib and fetchmail read the files byte for byte and delete
# them; procmail delivers into the Maildir while sessions delete and quit, and nothing is lost.
import os
import pwd
import subprocess

import interop_lib as lib
from test_fetchmail import fetchmail


def make_maildir(env, user="alice"):
    """An empty Maildir for `user` under srv/, and the config pointing at it."""
    root = os.path.join(env.srv, "maildir", user)
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, d), mode=0o700, exist_ok=True)
    env.write_conf(mailbox="maildir:" + os.path.join(env.srv, "maildir", "%u"))
    env.fix_perms()
    return root


def files(root):
    return sorted(n for d in ("new", "cur") for n in os.listdir(os.path.join(root, d)))


def test_poplib_and_fetchmail_read_a_maildir_byte_for_byte(env):
    messages = lib.tricky_messages(huge=False)
    root = make_maildir(env)
    for i, m in enumerate(messages):
        # Delivery order is the time the name starts with; half of them already seen (cur/, with flags).
        sub, suffix = ("cur", ":2,S") if i % 2 else ("new", "")
        with open(os.path.join(root, sub, "17000000%02d.M%dP1.box%s" % (i, i, suffix)), "wb") as f:
            f.write(m)
    env.fix_perms()
    d = env.start()
    wires = [lib.to_wire(m) for m in messages]
    p = d.login()
    assert p.stat() == (len(wires), sum(len(w) for w in wires))
    for i, w in enumerate(wires, 1):
        assert p.list(i).split()[2] == b"%d" % len(w)
        _, lines, _ = p.retr(i)
        assert b"\r\n".join(lines) + b"\r\n" == w, "message %d" % i
    uidls = p.uidl()[1]
    assert len(set(u.split()[1] for u in uidls)) == len(messages), "ids unique, twins included"
    p.quit()
    out = os.path.join(env.cli, "keep")
    r = fetchmail(env, d.port, True, out)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    lib.assert_delivered(lib.delivered(out), messages, "fetchmail", added_header=b"Received")
    assert len(files(root)) == len(messages), "keep left every file"
    out = os.path.join(env.cli, "delete")
    r = fetchmail(env, d.port, False, out)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    lib.assert_delivered(lib.delivered(out), messages, "fetchmail", added_header=b"Received")
    assert files(root) == [], "fetch-and-delete removed every file"


def test_procmail_maildir_deliveries_racing_with_updates_lose_nothing(env):
    """procmail writes each message to tmp/ and renames it into new/ while sessions keep deleting the first
    message and quitting. Every delivery ends up deleted by exactly one session or still in the Maildir."""
    procmail = lib.need_tool("procmail")
    root = make_maildir(env)
    rc = os.path.join(env.srv, "procmailrc")
    with open(rc, "w") as f:
        f.write("SHELL=/bin/sh\n:0\n%s/\n" % root)  # a trailing / means Maildir
    env.fix_perms()
    # procmail writes as the account pop3d serves as, so the files are that account's, as on a real box.
    as_user = {"user": pwd.getpwnam(lib.RUN_AS).pw_uid} if lib.IS_ROOT else {}

    def deliver(n):
        r = subprocess.run([procmail, "-m", rc], input=lib.new_message(n, b"maildir %d" % n), capture_output=True,
                           timeout=lib.CLIENT_TIMEOUT, **as_user)
        assert r.returncode == 0, r.stderr

    deliver(0)
    d = env.start()
    total = 30

    def number_of(lines):
        n = int([ln for ln in lines if ln.startswith(b"Subject: maildir ")][0].split()[-1])
        assert b"\r\n".join(lines) + b"\r\n" == lib.to_wire(lib.new_message(n, b"maildir %d" % n))
        return n

    deleted = lib.race_deliveries_with_updates(d, deliver, total, 20, number_of)
    left = []
    for name in files(root):
        sub = "new" if os.path.exists(os.path.join(root, "new", name)) else "cur"
        with open(os.path.join(root, sub, name), "rb") as f:
            data = f.read()
        n = int([ln for ln in data.split(b"\n") if ln.startswith(b"Subject: maildir ")][0].split()[-1])
        assert data == lib.new_message(n, b"maildir %d" % n), "delivery %d damaged" % n
        left.append(n)
    assert sorted(left + deleted) == list(range(total)), (deleted, left)
    assert len(set(deleted)) == len(deleted)
