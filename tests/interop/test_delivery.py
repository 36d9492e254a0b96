# Interop with a real delivery agent: procmail appends to the same mbox (its dotlock and kernel locks) while pop3d
# sessions read it and remove messages at QUIT; no delivered message may be lost, duplicated or damaged.
import os
import subprocess

import interop_lib as lib

PROCMAIL_RC = b"""SHELL=/bin/sh
LOCKTIMEOUT=30
:0:
%s
"""


def procmail_rc(env):
    """A procmail rcfile that delivers to alice's mbox, locking it with `alice.lock` (plus procmail's kernel
    locks), as a local delivery agent on the box would."""
    path = os.path.join(env.cli, "procmailrc")
    with open(path, "wb") as f:
        f.write(PROCMAIL_RC % env.mbox_path("alice").encode())
    os.chmod(path, 0o644)
    return path


def message(n):
    return (b"From: sender%d@example.org\nTo: alice@example.net\nSubject: delivery %d\n"
            b"Message-ID: <delivery.%d@example.org>\n\nbody of delivery %d\n.dot line\nFrom the middle\n"
            % (n, n, n, n))


def deliver(rc, n):
    lib.need_tool("procmail")
    r = subprocess.run(["procmail", "-f", "sender@example.org", "-m", rc], input=message(n), capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    assert r.returncode == 0, r.stderr


def subjects(env):
    data = env.read_mbox("alice") or b""
    out = []
    for e in lib.parse_mbox(data):
        msg = e["message"]
        assert b"body of delivery" in msg and msg.endswith(b".dot line\nFrom the middle\n"), msg
        subject = [ln for ln in msg.split(b"\n") if ln.startswith(b"Subject: ")][0]
        out.append(int(subject.split()[-1]))
    return out


def test_mail_delivered_during_a_session_survives_its_update(env):
    rc = procmail_rc(env)
    for n in range(3):
        deliver(rc, n)
    env.fix_perms()
    d = env.start()
    p = d.login()
    assert p.stat()[0] == 3
    # Delivered while the session holds the maildrop: procmail is not blocked.
    for n in range(3, 6):
        deliver(rc, n)
    p.dele(1)
    p.quit()
    assert subjects(env) == [1, 2, 3, 4, 5]
    # procmail's quoting (>From) is read back: RETR gives the message as delivered.
    p = lib.login_retry_in_use(d)
    assert p.stat()[0] == 5
    _, lines, _ = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == lib.to_wire(message(1))
    p.quit()


def test_deliveries_racing_with_updates_lose_nothing(env):
    """A bounded race: 40 procmail deliveries in one thread while sessions keep deleting the first message and
    quitting. Every delivery must end up either deleted by exactly one session or still in the mbox, intact."""
    rc = procmail_rc(env)
    deliver(rc, 0)
    env.fix_perms()
    d = env.start()
    total = 40

    def number_of(lines):
        return int([ln for ln in lines if ln.startswith(b"Subject: ")][0].split()[-1])

    deleted = lib.race_deliveries_with_updates(d, lambda n: deliver(rc, n), total, 25, number_of)
    left = subjects(env)
    assert sorted(left + deleted) == list(range(total)), (deleted, left)
    assert len(set(deleted)) == len(deleted)
