# `make install` puts the binary, the man pages and the example configuration in place with their modes, the
# installed binary accepts the installed example config, and the man pages lint clean and cannot drift from
# the options in src/main.rs and the keys in src/config/keys.rs and etc/pop3d.conf.
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

import interop_lib as lib

ROOT = lib.REPO_ROOT
MAN8 = os.path.join(ROOT, "man", "pop3d.8")
MAN5 = os.path.join(ROOT, "man", "pop3d.conf.5")
ETC_CONF = os.path.join(ROOT, "etc", "pop3d.conf")
USERS_EXAMPLE = os.path.join(ROOT, "etc", "users.example")

# Variables a caller's environment could set that would change what `make install` does.
MAKE_VARS = ("DESTDIR", "PREFIX", "BINDIR", "SBINDIR", "MANDIR", "SYSCONFDIR", "BIN", "TARGET", "INSTALL",
             "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def built_binary():
    """The binary the interop suite tests (conftest/interop_lib: target/debug/pop3d or $POP3D_BIN), given to
    `make install` as BIN so the test does not build the release profile."""
    if not os.access(lib.POP3D_BIN, os.X_OK):
        pytest.fail("%s is not built: run `cargo build` first" % lib.POP3D_BIN)
    return os.path.abspath(lib.POP3D_BIN)


def make(*args, umask=0o022):
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + list(args), capture_output=True,
                       timeout=lib.CLIENT_TIMEOUT, env=env, preexec_fn=lambda: os.umask(umask))
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0, out
    return out


def tree(root):
    """{relative path: mode} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = os.lstat(p).st_mode & 0o7777
    return out


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="pop3d-install-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


INSTALLED = {
    "usr/sbin/pop3d": 0o755,
    "usr/share/man/man8/pop3d.8": 0o644,
    "usr/share/man/man5/pop3d.conf.5": 0o644,
    "etc/pop3d/pop3d.conf": 0o644,
    "etc/pop3d/users.example": 0o640,
}


def test_install_puts_every_file_in_place_with_its_mode(tmp):
    dest = os.path.join(tmp, "root")
    # A restrictive umask must not leak into the image: directories are 0755 whatever it is.
    make("install", "DESTDIR=" + dest, "PREFIX=/usr", "BIN=" + built_binary(), umask=0o077)
    got = tree(dest)
    dirs = {p: m for p, m in got.items() if os.path.isdir(os.path.join(dest, p))}
    files = {p: m for p, m in got.items() if p not in dirs}
    assert files == INSTALLED, "\n".join("%o %s" % (m, p) for p, m in sorted(got.items()))
    assert set(dirs.values()) == {0o755}, dirs
    for path, source in [("usr/sbin/pop3d", built_binary()), ("usr/share/man/man8/pop3d.8", MAN8),
                         ("usr/share/man/man5/pop3d.conf.5", MAN5), ("etc/pop3d/pop3d.conf", ETC_CONF),
                         ("etc/pop3d/users.example", USERS_EXAMPLE)]:
        assert same_bytes(os.path.join(dest, path), source), path


def test_installed_binary_accepts_the_installed_example_config(tmp):
    dest = os.path.join(tmp, "root")
    make("install", "DESTDIR=" + dest, "PREFIX=/usr", "BIN=" + built_binary())
    pop3d = os.path.join(dest, "usr/sbin/pop3d")
    conf = os.path.join(dest, "etc/pop3d/pop3d.conf")
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    r = subprocess.run([pop3d, "-V"], capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    assert r.returncode == 0 and r.stdout.decode() == "pop3d %s\n" % version, r
    # The example config names /etc/pop3d/users (never installed: the operator writes it) and state_dir
    # /var/lib/pop3d (made by the init scripts and units): those two point into the image, everything else
    # is the installed file as it is, checked with the installed users.example (every hash scheme).
    state = os.path.join(tmp, "state")
    os.mkdir(state, 0o700)
    if os.geteuid() == 0:
        os.chown(state, pwd.getpwnam("mail").pw_uid, -1)  # the example's `user`: only it may write state_dir
    users = os.path.join(dest, "etc/pop3d/users.example")

    def check(*options):
        return subprocess.run([pop3d, "-t", "-f", conf] + list(options), capture_output=True,
                              timeout=lib.CLIENT_TIMEOUT)

    r = check("-o", "users_file=" + users, "-o", "state_dir=" + state)
    assert r.returncode == 0 and r.stdout == b"pop3d: configuration OK\n" and r.stderr == b"", r
    # In inetd mode too (the example's `log = syslog` is allowed there).
    r = check("-i", "-o", "users_file=" + users, "-o", "state_dir=" + state)
    assert r.returncode == 0 and r.stdout == b"pop3d: configuration OK\n" and r.stderr == b"", r
    # The check really reads the installed file: a broken line in it fails it, naming the key.
    with open(conf, "a") as f:
        f.write("bogus_key = 1\n")
    r = check("-o", "users_file=" + users, "-o", "state_dir=" + state)
    assert r.returncode == 1 and b"unknown key `bogus_key`" in r.stderr, r


def test_reinstall_keeps_an_edited_config(tmp):
    dest = os.path.join(tmp, "root")
    make("install", "DESTDIR=" + dest, "PREFIX=/usr", "BIN=" + built_binary())
    conf = os.path.join(dest, "etc/pop3d/pop3d.conf")
    with open(conf, "a") as f:
        f.write("log_level = debug\n")
    example = os.path.join(dest, "etc/pop3d/users.example")
    with open(example, "a") as f:
        f.write("edited:{PLAIN}x\n")
    out = make("install", "DESTDIR=" + dest, "PREFIX=/usr", "BIN=" + built_binary())
    assert "kept the existing %s" % conf in out, out
    with open(conf) as f:
        assert f.read().endswith("log_level = debug\n")
    assert same_bytes(example, USERS_EXAMPLE), "users.example is the shipped one again"
    assert tree(dest)["etc/pop3d/users.example"] == 0o640


def test_install_directories_follow_the_usual_variables(tmp):
    # The defaults: PREFIX /usr/local, SYSCONFDIR /etc whatever PREFIX is.
    dest = os.path.join(tmp, "default")
    make("install", "DESTDIR=" + dest, "BIN=" + built_binary())
    assert sorted(p for p in tree(dest) if not os.path.isdir(os.path.join(dest, p))) == sorted([
        "usr/local/sbin/pop3d", "usr/local/share/man/man8/pop3d.8", "usr/local/share/man/man5/pop3d.conf.5",
        "etc/pop3d/pop3d.conf", "etc/pop3d/users.example"])
    # Each directory on its own, as a firmware or distribution build passes them.
    dest = os.path.join(tmp, "custom")
    make("install", "DESTDIR=" + dest, "PREFIX=/opt/p", "BINDIR=/opt/p/bin", "MANDIR=/opt/p/man",
         "SYSCONFDIR=/opt/p/etc", "BIN=" + built_binary())
    assert sorted(p for p in tree(dest) if not os.path.isdir(os.path.join(dest, p))) == sorted([
        "opt/p/bin/pop3d", "opt/p/man/man8/pop3d.8", "opt/p/man/man5/pop3d.conf.5",
        "opt/p/etc/pop3d/pop3d.conf", "opt/p/etc/pop3d/users.example"])
    dest = os.path.join(tmp, "sbindir")
    make("install", "DESTDIR=" + dest, "PREFIX=/usr", "SBINDIR=/sbin", "BIN=" + built_binary())
    assert os.path.isfile(os.path.join(dest, "sbin/pop3d"))


def test_install_without_bin_builds_and_installs_the_release_small_binary():
    out = make("-n", "install", "DESTDIR=/nonexistent")
    assert "build --profile release-small" in out, out
    assert 'install -D -m 0755 "target/release-small/pop3d" "/nonexistent/usr/local/sbin/pop3d"' in out, out


# ---------------------------------------------------------------------------
# The man pages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=os.path.basename)
def test_man_page_lints_clean(page):
    with open(page) as f:
        assert f.readline().startswith('.\\" %s: ' % os.path.basename(page)), "a first line saying what it is"
    mandoc = lib.need_tool("mandoc")
    groff = lib.need_tool("groff")
    for cmd in ([mandoc, "-T", "lint", "-W", "all", page], [groff, "-man", "-ww", "-z", page]):
        r = subprocess.run(cmd, capture_output=True, timeout=lib.CLIENT_TIMEOUT)
        assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", (cmd, r.stdout, r.stderr)


def roff_text(line):
    """A roff source line as the words it shows: the macro name dropped, quotes, font changes and the common
    escapes undone (good enough to look for a value in the source)."""
    line = re.sub(r"^\.[A-Z]{1,2}\b ?", "", line)
    line = re.sub(r"\\f[BIRP]", "", line).replace('"', "")
    return line.replace("\\-", "-").replace("\\&", "").replace("\\~", " ").replace("\\c", "")


def sections(page):
    """{.SH title: [source lines]}"""
    out, cur = {}, None
    with open(page) as f:
        for line in f.read().splitlines():
            if line.startswith(".SH "):
                cur = line[4:].strip('"')
                out[cur] = []
            elif cur is not None:
                out[cur].append(line)
    return out


def tagged_entries(lines):
    """{tag source line: [the entry's source lines]} of the outermost .TP list of a section (tags of lists
    nested in .RS/.RE stay in their entry)."""
    out, depth, cur, i = {}, 0, None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".RS"):
            depth += 1
        elif line.startswith(".RE"):
            depth -= 1
        elif line == ".TP" and depth == 0:
            cur = lines[i + 1]
            out[cur] = []
            i += 2
            continue
        elif line.startswith(".SS") and depth == 0:
            cur = None
        if cur is not None:
            out[cur].append(line)
        i += 1
    return out


def config_keys():
    """The keys of the configuration's key table (src/config/keys.rs) and those etc/pop3d.conf documents, with
    their values."""
    with open(os.path.join(ROOT, "src", "config", "keys.rs")) as f:
        src = f.read()
    body = src[src.index("\nkeys! {\n"):src.index("\n}\n", src.index("\nkeys! {\n"))]
    # One line per key: `name: Type = "default", reader;` (or `= none,`).
    code = re.findall(r'^    (\w+): [^=]+ = (?:"[^"]*"|none),', body, re.M)
    with open(ETC_CONF) as f:
        documented = re.findall(r"^#?(\w+) = (.*)$", f.read(), re.M)
    return code, documented


def test_pop3d_conf_5_has_every_key_with_its_default():
    code, documented = config_keys()
    assert len(code) > 20 and sorted(code) == sorted(set(k for k, _ in documented)), (code, documented)
    entries = tagged_entries(sections(MAN5)["KEYS"])
    tags = {re.fullmatch(r"\.B (\w+)", t).group(1): lines for t, lines in entries.items()}
    assert sorted(tags) == sorted(code), "pop3d.conf.5 KEYS vs src/config/keys.rs"
    # Every value etc/pop3d.conf sets (uncommented) is the built-in default (a unit test in config.rs says
    # so): the man page must give the same one.
    with open(ETC_CONF) as f:
        defaults = re.findall(r"^(\w+) = (.*)$", f.read(), re.M)
    assert len(defaults) > 15
    for key, value in defaults:
        text = " ".join(roff_text(line) for line in tags[key])
        assert "Default: " + value in text, (key, value, text)


def test_pop3d_8_has_every_option():
    with open(os.path.join(ROOT, "src", "main.rs")) as f:
        in_code = re.findall(r'opts\.opt(?:opt|flag|multi)\(\s*"(\w)"', f.read())
    r = subprocess.run([built_binary(), "-h"], capture_output=True, timeout=lib.CLIENT_TIMEOUT)
    in_help = re.findall(r"^\s+-(\w)\b", r.stdout.decode(), re.M)
    assert len(in_code) >= 9 and sorted(in_code) == sorted(in_help), (in_code, in_help)
    secs = sections(MAN8)
    tags = [re.match(r"\.BI? \\-(\w)\b", t) for t in tagged_entries(secs["OPTIONS"])]
    assert None not in tags
    assert sorted(t.group(1) for t in tags) == sorted(in_code), "pop3d.8 OPTIONS vs src/main.rs"
    synopsis = " ".join(roff_text(line) for line in secs["SYNOPSIS"])
    for opt in in_code:
        assert "-" + opt in synopsis, opt
    for title in ("SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "EXIT STATUS", "FILES", "EXAMPLES"):
        assert title in secs, title
    signals = " ".join(secs["SIGNALS"])
    assert "SIGHUP" in signals and "SIGTERM" in signals


def test_users_file_example_in_pop3d_conf_5_is_the_shipped_one():
    """The users file in pop3d.conf.5's EXAMPLES is etc/users.example's accounts (which the install test
    checks with `pop3d -t`), so every hash it shows is one pop3d accepts."""
    lines = sections(MAN5)["EXAMPLES"]
    start = lines.index("# name:hash")
    shown = [roff_text(line) for line in lines[start + 1:lines.index(".EE", start)]]
    with open(USERS_EXAMPLE) as f:
        shipped = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    assert shown == shipped
    for scheme in ("$6$", "$5$", "$1$", "{PLAIN}", "{SCRAM-SHA-256}"):
        assert any(scheme in line for line in shown), scheme
