# pytest fixtures for the pop3d interop tests: a temp environment per test and a running daemon (plain or TLS).
import os
import shutil
import tempfile

import pytest

import interop_lib as lib


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def env(request):
    e = lib.Env()
    yield e
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for d in e.daemons:
        d.stop()
        if failed:
            print("---- pop3d %s\n---- stderr:\n%s" % (" ".join(d.cmd), d.stderr()))
    e.close(keep=failed and bool(os.environ.get("INTEROP_KEEP")))


@pytest.fixture
def messages():
    return lib.tricky_messages()


@pytest.fixture
def alice_mbox(env, messages):
    """alice's mbox with the tricky messages; returns the file's bytes."""
    data = lib.build_mbox(messages)
    env.write_mbox("alice", data)
    return data


@pytest.fixture
def server(env, alice_mbox):
    return env.start()


@pytest.fixture(scope="session")
def pki():
    """One throw-away test PKI (CA, server and client certificates) for the whole run."""
    d = tempfile.mkdtemp(prefix="pop3d-interop-pki-")
    try:
        yield lib.Pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tls_server(env, alice_mbox, pki):
    """A daemon with a plaintext listener (`port`, STLS offered) and an implicit-TLS one (`tls_port`), where
    logins that send a password need TLS (plaintext_auth = no)."""
    env.use_tls(pki, plaintext_auth="no")
    return env.start(listen=("127.0.0.1:0", "127.0.0.1:0 tls"))
