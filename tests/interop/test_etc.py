# The shipped snippets in etc/ work as written: the systemd units pass systemd-analyze, the init.d script
# starts, reports, reloads and stops a real daemon with start-stop-daemon, and the OpenWrt procd script
# registers what it should.
import os
import re
import socket
import subprocess
import time

import interop_lib as lib

ETC = os.path.join(lib.REPO_ROOT, "etc")


def test_systemd_units_verify_without_a_warning(env):
    tool = lib.need_tool("systemd-analyze")
    units = ["pop3d.service", "pop3d.socket", "pop3d@.service"]
    for u in units:
        with open(os.path.join(ETC, "systemd", u)) as f:
            text = f.read()
        assert "/usr/sbin/pop3d" in text or u == "pop3d.socket", u
        # The binary must exist for verify: point the units at the one under test.
        with open(os.path.join(env.cli, u), "w") as f:
            f.write(text.replace("/usr/sbin/pop3d", lib.POP3D_BIN))
    r = subprocess.run([tool, "verify"] + [os.path.join(env.cli, u) for u in units], capture_output=True,
                       timeout=lib.CLIENT_TIMEOUT, cwd=env.cli)
    assert r.returncode == 0 and r.stderr.strip() == b"" and r.stdout.strip() == b"", (r.stdout, r.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_script(env, port):
    """etc/init.d/pop3d with its paths pointed into the test environment (the lines an integrator edits or
    overrides in /etc/default/pop3d), and a defaults file that adds a listener and a log file."""
    with open(os.path.join(ETC, "init.d", "pop3d")) as f:
        text = f.read()
    defaults = os.path.join(env.cli, "default-pop3d")
    log = os.path.join(env.srv, "pop3d.log")
    with open(defaults, "w") as f:
        f.write('POP3D_OPTS="-l 127.0.0.1:%d -o log=%s"\n' % (port, log))
    edits = {
        r"^DAEMON=.*$": "DAEMON=%s" % lib.POP3D_BIN,
        r"^CONF=.*$": "CONF=%s" % env.conf,
        r"^PIDFILE=.*$": "PIDFILE=%s" % os.path.join(env.cli, "pop3d.pid"),
        r"^STATE_DIR=.*$": "STATE_DIR=%s" % env.state,
        r"/etc/default/pop3d": defaults,
    }
    for pattern, new in edits.items():
        text, n = re.subn(pattern, new, text, flags=re.M)
        assert n >= 1, pattern
    path = os.path.join(env.cli, "pop3d.init")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path, log


def wait_for_text(path, text, timeout=lib.IO_TIMEOUT):
    """The log file's contents once they hold `text` (the deadline is a hang guard)."""
    end = time.monotonic() + timeout
    while True:
        with open(path) as f:
            data = f.read()
        if text in data or time.monotonic() > end:
            return data
        time.sleep(0.05)


def run(script, action):
    r = subprocess.run(["sh", script, action], capture_output=True, timeout=lib.CLIENT_TIMEOUT * 2)
    return r.returncode, (r.stdout + r.stderr).decode()


def test_init_script_starts_reports_reloads_and_stops_the_daemon(env):
    lib.need_tool("start-stop-daemon")
    port = free_port()
    script, log = init_script(env, port)
    env.write_mbox("alice", lib.build_mbox([lib.new_message(1)]))
    rc, out = run(script, "configtest")
    assert rc == 0 and "OK" in out, out
    rc, out = run(script, "start")
    try:
        assert rc == 0 and "Starting pop3d" in out, out
        rc, out = run(script, "status")
        assert rc == 0 and "is running" in out, out
        rc, out = run(script, "start")
        assert rc == 0 and "already running" in out, out
        p = lib.poplib.POP3("127.0.0.1", port, timeout=lib.IO_TIMEOUT)
        p.user("alice")
        p.pass_(lib.PASSWORDS["alice"])
        assert p.stat()[0] == 1
        p.quit()
        rc, out = run(script, "reload")
        assert rc == 0 and "Reloading" in out, out
        # The reload reached the daemon (SIGHUP).
        assert "configuration reloaded" in wait_for_text(log, "configuration reloaded")
    finally:
        rc, out = run(script, "stop")
    assert rc == 0 and "Stopping pop3d" in out, out
    rc, out = run(script, "status")
    assert rc == 3 and "not running" in out, out
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "still listening after stop"
    with open(log) as f:
        text = f.read()
    assert "listening on 127.0.0.1:%d" % port in text and "session end: user=alice" in text, text
    # A broken config: start refuses before anything runs, and says why.
    env.write_conf(bogus_key="1")
    rc, out = run(script, "start")
    assert rc == 1 and "bogus_key" in out, out
    rc, out = run(script, "status")
    assert rc == 3, out


PROCD_STUB = """# procd's shell API, recording each call (one line each) instead of talking to procd.
procd_open_instance() { echo "open_instance" >> "$CALLS"; }
procd_set_param() { echo "set_param $*" >> "$CALLS"; }
procd_close_instance() { echo "close_instance" >> "$CALLS"; }
procd_send_signal() { echo "send_signal $*" >> "$CALLS"; }
"""


def test_openwrt_procd_script_starts_checked_and_reloads_with_hup(env):
    """etc/openwrt/pop3d.init under a stand-in for OpenWrt's rc.common: start_service checks the config, then
    registers pop3d in the foreground with respawn; a broken config registers nothing; reload sends HUP."""
    with open(os.path.join(ETC, "openwrt", "pop3d.init")) as f:
        text = f.read()
    assert text.startswith("#!/bin/sh /etc/rc.common\n")
    text = re.sub(r"^PROG=.*$", "PROG=%s" % lib.POP3D_BIN, text, flags=re.M)
    text = re.sub(r"^CONF=.*$", "CONF=%s" % env.conf, text, flags=re.M)
    script = os.path.join(env.cli, "pop3d.init")
    with open(script, "w") as f:
        f.write(PROCD_STUB + text)
    calls = os.path.join(env.cli, "calls")

    def call(function):
        if os.path.exists(calls):
            os.unlink(calls)
        r = subprocess.run(["sh", "-c", '. "$0" && %s' % function, script], capture_output=True,
                           timeout=lib.CLIENT_TIMEOUT, env=dict(os.environ, CALLS=calls))
        recorded = open(calls).read().splitlines() if os.path.exists(calls) else []
        return r.returncode, recorded, r.stderr.decode()

    rc, recorded, err = call("start_service")
    assert rc == 0, err
    assert recorded == ["open_instance", "set_param command %s -f %s" % (lib.POP3D_BIN, env.conf),
                        "set_param respawn 3600 5 5", "set_param stderr 1", "set_param term_timeout 10",
                        "close_instance"], recorded
    rc, recorded, err = call("reload_service")
    assert rc == 0 and recorded == ["send_signal pop3d * HUP"], (recorded, err)
    env.write_conf(bogus_key="1")
    for function in ("start_service", "reload_service"):
        rc, recorded, err = call(function)
        assert rc != 0 and recorded == [] and "configuration check failed" in err, (function, recorded, err)
