# Drivers for real mail clients on their own defaults (mutt and neomutt in a pseudo-terminal, mpop with `auth on`,
# c-client through php-imap, Perl Mail::POP3Client, Ruby net-pop): each configured only as its manual tells a user
# to (server, account, password, the CA to trust), run against a daemon, returning what it fetched.
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

import interop_lib as lib

# Headers mutt and neomutt add when they write a message into an mbox.
MUTT_HEADERS = (b"status:", b"x-status:", b"content-length:", b"lines:")


def run_in_pty(cmd, env, timeout=lib.CLIENT_TIMEOUT):
    """Run a full-screen program on a pseudo-terminal (120x40) until it exits; returns (exit code, screen bytes).
    The timeout is a hang guard: the program and what it started are killed, and the test fails."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out, end = b"", time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the program closed the terminal
                    data = b""
                out += data
                if data:
                    continue
            if proc.poll() is not None:
                break
            if time.monotonic() > end:
                lib.kill_group(proc)
                proc.wait()
                raise AssertionError("%s hung (killed): %r" % (" ".join(cmd), out[-2000:]))
    finally:
        os.close(master)
    return proc.wait(), out


def mutt(program, home, ca, url, user, keys, inbox, extra=""):
    """mutt or neomutt with a muttrc a user writes from the manual: the POP server (pop_host), the password,
    pop_delete, the local spool, the CA to trust. Everything about TLS and authentication is the default
    (ssl_starttls, pop_authenticators unset: GNU SASL picks from CAPA). `keys` are pushed as typed; `extra`
    is more of the muttrc."""
    rc = os.path.join(home, "muttrc")
    with open(rc, "w") as f:
        f.write('set pop_host="%s"\nset pop_pass="%s"\nset pop_delete=yes\nset delete=yes\n'
                'set spoolfile="%s"\nset folder="%s"\nset ssl_ca_certificates_file="%s"\nset mbox_type=mbox\n'
                'set sleep_time=0\n%s' % (url, lib.PASSWORDS[user], inbox, home, ca, extra))
    env = dict(os.environ, HOME=home, TERM="xterm", MAIL=inbox)
    return run_in_pty([lib.need_tool(program), "-n", "-F", rc] + keys, env)


def mutt_messages(path):
    """The messages mutt wrote into an mbox (it quotes nothing here: no body line starts with `From `), without
    the headers it adds."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for e in lib.parse_mbox(data, fmt="none"):
        lines = lib.split_lines(e["message"])
        end = lines.index(b"\n")
        out.append(b"".join([ln for ln in lines[:end] if not ln.lower().startswith(MUTT_HEADERS)] + lines[end:]))
    return out


def mpop(home, ca, host, port, user, transport, target):
    """mpop with its defaults (auth on: the best mechanism CAPA offers; tls_starttls on), delivering into an
    mbox and deleting what it fetched (keep off)."""
    rc = os.path.join(home, "mpoprc")
    tls = {"plain": "tls off\n", "stls": "tls on\n", "tls": "tls on\ntls_starttls off\n"}[transport]
    with open(rc, "w") as f:
        f.write("account default\nhost %s\nport %d\nuser %s\npassword %s\n%stls_trust_file %s\n"
                "delivery mbox %s\nkeep off\nuidls_file %s\n"
                % (host, port, user, lib.PASSWORDS[user], tls, ca, target, os.path.join(home, "uidls")))
    os.chmod(rc, 0o600)
    return lib.run_client([lib.need_tool("mpop"), "-C", rc, "--debug"], env={"HOME": home, "TMPDIR": home})


PHP = r"""<?php
$m = imap_open($argv[1], $argv[2], $argv[3], 0, 0);
if (!$m) { fwrite(STDERR, "open: " . imap_last_error() . "\n"); exit(1); }
$n = imap_num_msg($m);
for ($i = 1; $i <= $n; $i++) { $t = imap_fetchbody($m, $i, ""); echo "MSG " . strlen($t) . "\n" . $t; }
imap_delete($m, "1:" . $n);
imap_close($m, CL_EXPUNGE);
"""

PERL = r"""
use strict; use warnings; use Mail::POP3Client;
my ($host, $port, $ssl, $user, $pass) = @ARGV;
my $p = Mail::POP3Client->new(USER => $user, PASSWORD => $pass, HOST => $host, PORT => $port, USESSL => $ssl,
                              TIMEOUT => 10);
$p->Count() >= 0 or die "login: " . $p->Message() . "\n";
binmode STDOUT;
for my $i (1 .. $p->Count()) {
    my $text = $p->Retrieve($i);
    print "MSG " . length($text) . "\n" . $text;
    $p->Delete($i) or die "delete $i\n";
}
$p->Close() or die "quit\n";
"""

RUBY = r"""
require 'net/pop'
host, port, ssl, user, pass, ca = ARGV
pop = Net::POP3.new(host, port.to_i)
pop.enable_ssl(OpenSSL::SSL::VERIFY_PEER, ca) if ssl == '1'
pop.start(user, pass) do |p|
  p.mails.each do |m|
    text = m.pop
    $stdout.write("MSG #{text.bytesize}\n#{text}")
    m.delete
  end
end
"""


def scripted(home, kind, args, ca):
    """php-imap (c-client), Perl Mail::POP3Client or Ruby net-pop: one run that fetches every message and
    deletes it; returns (CompletedProcess, [message bytes]). The CA is trusted the way each documents
    (OpenSSL's SSL_CERT_FILE for c-client and IO::Socket::SSL, a ca_file for net-pop)."""
    text, interp = {"php": (PHP, "php"), "perl": (PERL, "perl"), "ruby": (RUBY, "ruby")}[kind]
    script = os.path.join(home, "client." + kind)
    with open(script, "w") as f:
        f.write(text)
    r = lib.run_client([lib.need_tool(interp), script] + list(args), env={"HOME": home, "SSL_CERT_FILE": ca})
    out, msgs = r.stdout, []
    while out.startswith(b"MSG "):
        head, out = out.split(b"\n", 1)
        n = int(head.split()[1])
        msgs.append(out[:n])
        out = out[n:]
    return r, msgs
