"""pflogsumm (Debian's package) reads mtad's mail log with the right counts.

Real traffic through the real daemon: messages sent, one deferred then
sent, one bounced (whose DSN is then delivered), and RCPTs rejected for
relaying; then `pflogsumm --syslog-name=mtad` must count exactly that.
"""
import os
import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import wait_until
from test_delivery import DEADLINE, message, queue_empty, send, wait_log, \
    world_factory  # noqa: F401  (fixture)

PFLOGSUMM = shutil.which("pflogsumm") or "/usr/sbin/pflogsumm"


def grand_totals(text):
    """{"received": 6, "delivered": 7, ...} from pflogsumm's Grand Totals section."""
    out = {}
    sect = text.split("Grand Totals", 1)[1].split("Per-Day", 1)[0]
    for line in sect.splitlines():
        mm = re.match(r"^\s*(\d+)([km]?)\s+([a-z][a-z ]*?)(\s+\(.*\))?\s*$", line)
        if mm and mm.group(2) == "":
            out[mm.group(3).strip()] = int(mm.group(1))
    mm = re.search(r"\((\d+)\s+deferrals\)", sect)
    out["deferrals"] = int(mm.group(1)) if mm else 0
    return out


@pytest.mark.skipif(not shutil.which("pflogsumm") and not
                    __import__("os").path.exists("/usr/sbin/pflogsumm"),
                    reason="pflogsumm is not installed")
def test_pflogsumm_counts(mtad_factory, world_factory):
    w = world_factory({
        "src.test": {"MX": [(10, "mx.src.test")]}, "mx.src.test": {"A": ["127.0.0.3"]},
        "ok.test": {"MX": [(10, "mx.ok.test")]}, "mx.ok.test": {"A": ["127.0.0.2"]},
        "slow.test": {"A": ["127.0.0.4"]},
        "bad.test": {"A": ["127.0.0.5"]},
    }, hops=4)
    w.hop(4).tempfail("RCPT", times=1)
    w.hop(5).permfail("RCPT", reply="550 5.1.1 <x@bad.test>: Recipient address rejected")
    m = mtad_factory(w.conf(smtpd_trusted_networks="127.0.0.1/32"))

    for i in range(3):                                       # 3 sent
        send(m, "alice@src.test", ["u%d@ok.test" % i], tag="s%d" % i)
    send(m, "bob@src.test", ["v1@ok.test", "v2@ok.test"], tag="two")   # 2 sent
    send(m, "carol@src.test", ["later@slow.test"], tag="slow")         # deferred, then sent
    send(m, "dave@src.test", ["x@bad.test"], tag="bad")                # bounced; DSN sent
    # 2 rejected: not a trusted client, so no relaying
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10,
                      source_address=("127.0.0.9", 0)) as s:
        s.ehlo("outsider.test")
        s.mail("eve@evil.test")
        for r in ("a@ok.test", "b@ok.test"):
            code, _ = s.rcpt(r)
            assert code == 554, code
        s.rset()

    wait_log(m, "status=deferred")
    wait_log(m, "to=<dave@src.test>")       # the DSN went out
    w.hop(4).wait_for(1, DEADLINE)
    queue_empty(m)
    wait_log(m, "status=sent", 7)
    log = m.maillog()

    p = subprocess.run([PFLOGSUMM, "--syslog-name=mtad", "--problems-first",
                        "--no-no-msg-size"], input=log, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    t = grand_totals(p.stdout)
    want = {
        "received": 6,       # the DSN is not received over SMTP
        "delivered": 7,      # 3 + 2 + the deferred one + the DSN
        "deferred": 1,
        "deferrals": 1,
        "bounced": 1,
        "rejected": 2,
    }
    got = {k: t.get(k) for k in want}
    assert got == want, "pflogsumm counts: got %r, want %r\n%s\n--- log ---\n%s" % (
        got, want, p.stdout, log)
    # the per-domain tables name the destinations
    assert "ok.test" in p.stdout and "slow.test" in p.stdout
    assert "Recipient address rejected" in p.stdout or "User unknown" in p.stdout or \
        "bad.test" in p.stdout


def test_operations_doc_runs_pflogsumm_with_the_syslog_name():
    """docs/operations.md's pflogsumm line must name mtad (without it pflogsumm counts zero)."""
    doc = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "docs", "operations.md")
    lines = [l for l in open(doc) if "pflogsumm " in l and "maillog" in l]
    assert lines and all("--syslog-name=mtad" in l for l in lines), lines
