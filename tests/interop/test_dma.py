# Interop with dma (DragonFly Mail Agent), which locks /var/mail/USER with flock only: its deliveries race with
# pop3d sessions that delete and rewrite the same mbox, and no message may be lost, duplicated or damaged.
import fcntl
import glob
import grp
import os
import pwd
import subprocess
import time

import pytest

import interop_lib as lib

USER = "p3ddma"          # a system account made for the test: dma delivers only to local accounts
PASSWORD = "Dma-pw.7"
SPOOL = "/var/mail"      # dma's spool directory is compiled in
QUEUE = "/var/spool/dma"  # dma's queue (Debian's dma.conf): a Q file (ID, Sender, Recipient) and an M file per delivery
RUN_LOCK = "/run/lock/pop3d-interop-dma.lock"  # one run at a time uses the account and its mailbox
SETTLE_TIMEOUT = 100     # a deferred dma sleeps 30 s at a time before it looks for a queue flush
BODY_LINES = 4000        # about 120 KB per message, so every rewrite at QUIT takes a while


def body(n):
    return b"".join(b"line %d of delivery %d, padded to a typical width\n" % (k, n) for k in range(BODY_LINES))


def message(n):
    return (b"From: sender%d@example.org\nTo: %s@localhost\nSubject: dma %d\n\n" % (n, USER.encode(), n)
            + body(n) + b"From the middle of a line start\n.dot line\n")


def run_lock():
    """Waits (bounded) for any other run of these tests on this machine to end: they share the account
    and /var/mail/p3ddma, and one run's deliveries and rewrites would land in the other's mailbox."""
    f = open(RUN_LOCK, "a")
    deadline = time.monotonic() + 600
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.close()
                raise AssertionError("another run of test_dma.py held %s for 10 minutes" % RUN_LOCK)
            time.sleep(0.2)


def queued_for(user):
    """dma's queue files (Q and M) of every delivery to `user` not finished yet: queued, deferred or under way
    (dma removes them only once the mail is in the mailbox)."""
    out = []
    for q in glob.glob(os.path.join(QUEUE, "Q*")):
        try:
            with open(q) as f:
                fields = dict(ln.rstrip("\n").split(": ", 1) for ln in f if ": " in ln)
        except FileNotFoundError:
            continue
        if fields.get("Recipient") == user:
            out += [q, os.path.join(QUEUE, "M" + os.path.basename(q)[1:])]
    return out


def dma_processes(user):
    """dma processes that may deliver to `user`: those given it as a recipient, and queue runs (-q)."""
    out = []
    for d in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"dma" and (user.encode() in argv or any(a.startswith(b"-q") for a in argv)):
            out.append(int(d.split("/")[2]))
    return out


def settle_dma(user):
    """Waits until no delivery to `user` is queued or under way (each one reaches the mailbox that exists now),
    bounded; a `dma -q` delivers what a killed dma left queued and wakes a deferred one sleeping in its retry
    loop. On timeout the leftover queue items nobody holds are removed, so none comes back later, and it fails."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    flushed = None
    while True:
        queued, procs = queued_for(user), dma_processes(user)
        if not queued and not procs:
            return
        if queued and (flushed is None or time.monotonic() - flushed > 10):
            subprocess.run(["dma", "-q"], capture_output=True, timeout=lib.CLIENT_TIMEOUT)
            flushed = time.monotonic()
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for q in queued:
        if os.path.basename(q).startswith("Q"):
            with open(q) as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # dma holds it while it delivers
                except BlockingIOError:
                    continue
                for p in (q, os.path.join(QUEUE, "M" + os.path.basename(q)[1:])):
                    if os.path.exists(p):
                        os.unlink(p)
    raise AssertionError("deliveries to %s still queued or under way after %ss: %s, dma processes %s"
                         % (user, SETTLE_TIMEOUT, queued, procs))


def make_mbox(mbox):
    fd = os.open(mbox, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
    os.fchown(fd, pwd.getpwnam(USER).pw_uid, grp.getgrnam("mail").gr_gid)
    os.fchmod(fd, 0o660)
    os.close(fd)


@pytest.fixture
def dma_user(monkeypatch):
    """The system account and its mailbox, made as an integrator shipping dma would: dma-mbox-create makes
    a missing mailbox 0620 (unreadable by group mail, which pop3d runs as), so it is made 0660 first.
    No other run's deliveries and no earlier run's late (queued or deferred) delivery reach the test's
    mailbox, and every delivery of the test has ended when it is removed."""
    if os.geteuid() != 0:
        pytest.skip("dma delivers to system accounts in /var/mail: needs root")
    lib.need_tool("dma")
    lock = run_lock()
    made = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        made = True
    mbox = os.path.join(SPOOL, USER)
    try:
        # What an earlier run left behind is delivered into the old mailbox, which then goes.
        if not os.path.exists(mbox):
            make_mbox(mbox)
        settle_dma(USER)
        for p in (mbox, mbox + ".lock"):
            if os.path.exists(p):
                os.unlink(p)
        make_mbox(mbox)
        monkeypatch.setitem(lib.PASSWORDS, USER, PASSWORD)
        yield mbox
        settle_dma(USER)
    finally:
        for p in (mbox, mbox + ".lock"):
            if os.path.exists(p):
                os.unlink(p)
        if made:
            subprocess.run(["userdel", USER], check=False)
        lock.close()


def deliver(n):
    # -D: deliver before returning (no background queue run); -i: a lone "." line is not the end.
    r = subprocess.run(["dma", "-D", "-i", "-f", "sender@example.org", USER], input=message(n),
                       capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    assert r.returncode == 0, r.stderr


def delivered_numbers(mbox):
    with open(mbox, "rb") as f:
        data = f.read()
    out = []
    for e in lib.parse_mbox(data, fmt="mboxo"):
        msg = e["message"]
        n = int([ln for ln in msg.split(b"\n") if ln.startswith(b"Subject: dma ")][0].split()[-1])
        assert msg.endswith(b"\n\n" + body(n) + b"From the middle of a line start\n.dot line\n"), \
            "delivery %d damaged" % n
        out.append(n)
    return out


def start_as_mail(env):
    """pop3d serving /var/mail as user `mail` (group mail writes there and reads 0660 mailboxes)."""
    env.add_user_line("%s:{PLAIN}%s" % (USER, PASSWORD))
    env.write_conf(user="mail", mailbox=os.path.join(SPOOL, "%u"), mbox_format="mboxo")
    lib._chown_tree(env.srv, pwd.getpwnam("mail").pw_uid)
    lib.protect_users_file(env.users_file, "mail")
    return env.start()


def test_dma_delivery_is_served_byte_for_byte(env, dma_user):
    deliver(0)
    d = start_as_mail(env)
    p = d.login(USER)
    assert p.stat()[0] == 1
    _, lines, _ = p.retr(1)
    got = b"\r\n".join(lines) + b"\r\n"
    # dma adds its Received/Date/Message-Id headers and quotes "From " (mboxo); RETR gives the rest as sent.
    assert got.endswith(lib.to_wire(b"\n" + body(0) + b"From the middle of a line start\n.dot line\n"))
    assert b"\r\nSubject: dma 0\r\n" in got
    p.dele(1)
    p.quit()
    assert delivered_numbers(dma_user) == []


def test_dma_deliveries_racing_with_updates_lose_nothing(env, dma_user):
    """A bounded race: 30 dma deliveries in one thread while sessions keep deleting the first message and
    quitting (each QUIT rewrites the whole mbox after it). Every delivery must end up either deleted by
    exactly one session or still in the mbox, intact."""
    deliver(0)
    d = start_as_mail(env)
    total = 30

    def number_of(lines):
        return int([ln for ln in lines if ln.startswith(b"Subject: dma ")][0].split()[-1])

    deleted = lib.race_deliveries_with_updates(d, deliver, total, 20, number_of, user=USER)
    left = delivered_numbers(dma_user)
    assert sorted(left + deleted) == list(range(total)), (deleted, left)
    assert len(set(deleted)) == len(deleted)
