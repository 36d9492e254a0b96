# Unit tests of bench/report.py: a fixed results file prints the report bench/run.sh printed before its table moved
# to Python (tests/bench/report.txt was made by that shell code from tests/bench/results.txt), verdicts, re-printing.
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import report  # noqa: E402

RESULTS = os.path.join(HERE, "results.txt")


def expected():
    with open(os.path.join(HERE, "report.txt"), encoding="utf-8") as f:
        return f.read()


def cells(text, label):
    """The cells of the table row whose label is `label`."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if parts[0] == label.strip():
            return parts[1:]
    raise AssertionError("no row %r" % label)


def test_a_saved_run_prints_the_report_run_sh_printed():
    got = report.report(report.read_results(RESULTS))
    assert got == expected()


def test_verdicts_follow_the_figures():
    results = report.read_results(RESULTS)
    text = report.report(results)
    btrfs = "UPDATE on btrfs (loop file): QUIT after DELE 1, ms"
    assert cells(text, btrfs)[-2:] == ["<= dovecot", "yes"]
    assert cells(text, "UPDATE on ext4 (loop file): QUIT after DELE 1, ms")[-2:] == ["(for information)", ""]
    assert cells(text, "  same, 64 clients")[-1] == "NO", "310.2 is not 3x 120.7"
    assert cells(text, "  pop3d's instructions per login / per hash")[-1] == "yes", "1.197x rounds to 1.20x"
    # A figure not measured, or not a number, gives n/a, never a verdict.
    for missing, label in [("logincpu8,pop3d", "  pop3d's CPU per login / one hash"), ("size,pop3d", "binary size, bytes")]:
        less = {k: v for k, v in results.items() if k != missing}
        row = cells(report.report(less), label)
        assert row[0] == "n/a" and row[-1] == "n/a", row
    zero = dict(results, **{"hash,pop3d": "0"})
    assert cells(report.report(zero), "  pop3d's CPU per login / one hash")[0] == "n/a", "no ratio to 0"
    wrong = dict(results, **{"updfsbtrfs,pop3d": "wrong"})
    assert cells(report.report(wrong), btrfs)[::4] == ["wrong", "n/a"]
    missed = dict(results, **{"updfsbtrfs,pop3d": "226.1"})
    assert cells(report.report(missed), btrfs)[-1] == "NO"
    twice = dict(results, **{"updfsbytesxfs,pop3d": "199894204"})
    assert cells(report.report(twice), "  octets written / octets moved")[-1] == "yes", "the btrfs row comes first"
    rows = [line for line in report.report(twice).splitlines() if "octets written / octets moved" in line]
    assert [r.split("|")[-2].strip() for r in rows] == ["yes", "NO", ""], rows


def test_every_row_fits_the_table():
    text = report.report(report.read_results(RESULTS))
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(report.ROWS)
    assert len({len(line) for line in table}) == 1, "a cell wider than its column"


def test_a_new_row_is_one_line():
    rows = list(report.ROWS)
    try:
        report.ROWS.append(report.row("UPDATE on btrfs, ms", "updbtrfs", report.ALL,
                                      report.target("< 100 ms", lambda a: a < 100, "updbtrfs"),
                                      note="the same UPDATE on a btrfs loop file ({secs} s)"))
        results = dict(report.read_results(RESULTS), **{"updbtrfs,pop3d": "80.5", "updbtrfs,dovecot": "70"})
        text = report.report(results)
        assert cells(text, "UPDATE on btrfs, ms") == ["80.5", "70", "n/a", "< 100 ms", "yes"]
        assert text.endswith("- UPDATE on btrfs, ms: the same UPDATE on a btrfs loop file (3 s)\n")
    finally:
        report.ROWS[:] = rows


def test_the_command_reprints_a_saved_file():
    script = os.path.join(ROOT, "bench", "report.py")
    r = subprocess.run([sys.executable, script, RESULTS], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == expected(), r.stderr
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Usage" in r.stderr


def test_issue_18_rows_weigh_every_figure_they_name():
    results = report.read_results(RESULTS)
    text = report.report(results)
    row = cells(text, "  64 clients, same address (users file)")
    assert row == ["406.3", "76.4", "n/a (PAM)", ">=0.8x 8, >=dovecot", "yes"], row
    # 64 clients must keep 0.8x the 8-client rate and beat Dovecot's 64: either one missed is a NO.
    for figure, value in [("busyu64,pop3d", "300"), ("busyu64,dovecot", "500")]:
        row = cells(report.report(dict(results, **{figure: value})), "  64 clients, same address (users file)")
        assert row[-1] == "NO", (figure, row)
    # The system-accounts row is held to Dovecot's users-file figure.
    slow = dict(results, **{"busyu64,dovecot": "250"})
    assert cells(report.report(slow), "  64 clients, same address (system accts)")[-1] == "NO"
    # A flood row needs both real clients within 100 ms; ms shown whole.
    assert cells(text, "  1000 dripping conns from 1 address")[0::4] == ["53 / 2100", "NO"]
    assert cells(text, "  1000 silent conns from 1 address")[0::4] == ["39 / 42", "yes"]
    # SCRAM is spaced like USER/PASS within 10%, either way.
    for span, verdict in [("26.4", "NO"), ("26.6", "yes"), ("32.4", "yes"), ("32.5", "NO")]:
        row = cells(report.report(dict(results, **{"spanscram,pop3d": span})), "  same by AUTH SCRAM-SHA-256, s")
        assert row[-1] == verdict, (span, row)
    # Dovecot's dripped ClientHello not cut within the window reads "open", and is no verdict's business.
    assert cells(text, "TLS ClientHello dripped 1 B/0.5 s: cut after, s")[:2] == ["5.46", "open"]


def test_a_real_client_that_failed_under_a_flood_misses_the_target():
    results = report.read_results(RESULTS)
    assert cells(report.report(results), "  real clients that failed under these floods")[0::4] == ["1", "NO"]
    clean = dict(results, **{"flsilent50fail,pop3d": "0"})
    assert cells(report.report(clean), "  real clients that failed under these floods")[0::4] == ["0", "yes"]
    unmeasured = {k: v for k, v in results.items() if k != "fltls1fail,pop3d"}
    assert cells(report.report(unmeasured), "  real clients that failed under these floods")[0::4] == ["n/a", "n/a"]
