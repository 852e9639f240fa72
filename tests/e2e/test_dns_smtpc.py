"""DNS resolution (src/dns) and the outbound SMTP client (src/smtpc) end to end,
driven through build/mtad_probe against fakedns.py and nexthop.py on loopback.

The probe resolves and sends exactly as the delivery code does (dns.h,
smtpc.h); its exit status is 0 (ok), 69 (permanent) or 75 (temporary).
"""
import os
import random
import subprocess
import time

import pytest

from fakedns import FakeDNS
from nexthop import NextHop

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MTAD_BIN = os.path.abspath(os.environ.get("MTAD_BIN", os.path.join(ROOT, "build", "mtad")))
PROBE = os.path.join(os.path.dirname(MTAD_BIN), "mtad_probe")

pytestmark = pytest.mark.skipif(not os.access(PROBE, os.X_OK), reason="mtad_probe not built")

RECORDS = {
    "example.test": {"MX": [(10, "mx1.example.test"), (20, "mx2.example.test")]},
    "mx1.example.test": {"A": ["127.0.0.2"]},
    "mx2.example.test": {"A": ["127.0.0.3"]},
    "equal.test": {"MX": [(10, "a.equal.test"), (10, "b.equal.test"), (10, "c.equal.test"),
                          (5, "first.equal.test"), (30, "last.equal.test")]},
    "nullmx.test": {"MX": [(0, ".")]},
    "servfail.test": "SERVFAIL",
    "nomx.test": {"A": ["127.0.0.4"]},
    "dual.test": {"A": ["127.0.0.5", "127.0.0.6"], "AAAA": ["::1"]},
    "v6only.test": {"AAAA": ["::1"]},
    "halfbroken.test": {"A": ["127.0.0.7"], "AAAA": "SERVFAIL"},
    "slow.test": "TIMEOUT",
}


@pytest.fixture
def dns():
    with FakeDNS(RECORDS) as d:
        yield d


@pytest.fixture
def nexthop():
    nh = NextHop("127.0.0.2").start()
    yield nh
    nh.stop()


def probe(dns, *args, input=b"", timeout=60):
    cmd = [PROBE, "-s", dns.addr] + [str(a) for a in args]
    r = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    return r.returncode, out


# ---- DNS ------------------------------------------------------------------

@pytest.mark.parametrize("name,rc,status", [
    ("example.test", 0, "OK"),
    ("nullmx.test", 69, "NULLMX"),
    ("nope.test", 69, "NXDOMAIN"),
    ("nomx.test", 69, "NODATA"),
    ("servfail.test", 75, "TEMPFAIL"),
])
def test_mx_status(dns, name, rc, status):
    got_rc, out = probe(dns, "mx", name)
    assert out.splitlines()[0] == "mx %s: %s" % (name, status), out
    assert got_rc == rc, out
    assert dns.queried(name, "MX") >= 1


def test_mx_order(dns):
    rc, out = probe(dns, "mx", "example.test")
    assert rc == 0
    assert out.splitlines()[1:] == ["  10 mx1.example.test", "  20 mx2.example.test"], out


def test_mx_equal_preferences_shuffled(dns):
    rc, out = probe(dns, "mx", *(["equal.test"] * 30))
    assert rc == 0, out
    blocks = out.split("mx equal.test: OK\n")[1:]
    assert len(blocks) == 30
    seconds = set()
    for b in blocks:
        hosts = [l.split()[1] for l in b.splitlines()]
        assert hosts[0] == "first.equal.test" and hosts[4] == "last.equal.test", hosts
        assert sorted(hosts[1:4]) == ["a.equal.test", "b.equal.test", "c.equal.test"], hosts
        seconds.add(hosts[1])
    # 30 shuffles of 3 hosts: all three lead at least once (fails by chance ~1e-5)
    assert seconds == {"a.equal.test", "b.equal.test", "c.equal.test"}, seconds


@pytest.mark.parametrize("name,rc,line", [
    ("dual.test", 0, None),
    ("v6only.test", 0, "addr v6only.test: OK ::1"),
    ("nomx.test", 0, "addr nomx.test: OK 127.0.0.4"),
    ("halfbroken.test", 0, "addr halfbroken.test: OK 127.0.0.7"),
    ("nope.test", 69, "addr nope.test: NXDOMAIN"),
    ("example.test", 69, "addr example.test: NODATA"),
    ("servfail.test", 75, "addr servfail.test: TEMPFAIL"),
    ("[2001:db8::25]", 0, "addr [2001:db8::25]: OK 2001:db8::25"),
    ("192.0.2.25", 0, "addr 192.0.2.25: OK 192.0.2.25"),
])
def test_addr(dns, name, rc, line):
    got_rc, out = probe(dns, "addr", name)
    assert got_rc == rc, out
    first = out.splitlines()[0]
    if line is not None:
        assert first == line
    else:
        # AAAA first, then A in any order
        parts = first.split()
        assert parts[:3] == ["addr", "dual.test:", "OK"] and parts[3] == "::1", first
        assert sorted(parts[4:]) == ["127.0.0.5", "127.0.0.6"], first


def test_literal_needs_no_query(dns):
    rc, _ = probe(dns, "addr", "127.0.0.9")
    assert rc == 0
    assert dns.queries == []


def test_dns_server_down_is_tempfail():
    with FakeDNS({}) as d:
        port = d.port
    # nothing listens on the port any more
    dead = type("D", (), {"addr": "127.0.0.1:%d" % port})()
    t = time.monotonic()
    rc, out = probe(dead, "mx", "example.test", timeout=90)
    assert rc == 75 and "TEMPFAIL" in out, out
    assert time.monotonic() - t < 40


def test_timeout_then_recovery(dns):
    """A name whose server never answers defers within the 30 s guard, and
    the forwarder is not shunned afterwards: the next look-up works."""
    t = time.monotonic()
    rc, out = probe(dns, "mx", "slow.test", "example.test", timeout=90)
    lines = out.splitlines()
    assert lines[0] == "mx slow.test: TEMPFAIL", out
    assert "mx example.test: OK" in lines, out
    assert time.monotonic() - t < 45


def test_records_change_while_running(dns):
    rc, out = probe(dns, "addr", "mx1.example.test")
    assert "127.0.0.2" in out
    dns.set("mx1.example.test", {"A": ["127.0.0.8"]})
    rc, out = probe(dns, "addr", "mx1.example.test")
    assert rc == 0 and "127.0.0.8" in out, out


# ---- SMTP ------------------------------------------------------------------

MSG = (b"From: a@b.test\r\nTo: x@example.test\r\nSubject: probe\r\n\r\n"
       b".leading dot\r\n..two dots\r\n.\r\nlast line\r\n")


def send(dns, nh, *rcpts, msg=MSG, opts=(), target="example.test"):
    args = ["-p", nh.port, "-f", "a@b.test", "-H", "client.test", "-T", "5"] + list(opts)
    return probe(dns, *(args + ["send", target] + list(rcpts)), input=msg)


def test_send_via_mx(dns, nexthop):
    rc, out = send(dns, nexthop, "x@example.test", "y@example.test")
    assert rc == 0, out
    m = nexthop.wait_for(1)[0]
    assert m.sender == "a@b.test"
    assert m.rcpts == ["x@example.test", "y@example.test"]
    assert m.data == MSG                      # dot-stuffing undone by the peer: identical
    assert m.helo == "client.test" and m.esmtp
    assert m.mail_params.get("SIZE") == str(len(MSG))
    assert "connected: mx1.example.test[127.0.0.2]:%d" % nexthop.port in out
    assert "data: 250 2.0.0" in out
    # PIPELINING: the whole group, then QUIT at the end
    assert nexthop.verbs() == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]


def test_send_bracketed_no_mx(dns, nexthop):
    rc, out = send(dns, nexthop, "x@example.test", target="[127.0.0.2]:%d" % nexthop.port)
    assert rc == 0, out
    nexthop.wait_for(1)
    assert dns.queries == []


def test_send_no_mx_uses_a(dns):
    with NextHop("127.0.0.4") as nh:
        rc, out = send(dns, nh, "x@nomx.test", target="nomx.test")
        assert rc == 0, out
        assert nh.wait_for(1)[0].rcpts == ["x@nomx.test"]


def test_helo_fallback(dns, nexthop):
    nexthop.refuse_ehlo = True
    rc, out = send(dns, nexthop, "x@example.test")
    assert rc == 0, out
    m = nexthop.wait_for(1)[0]
    assert not m.esmtp
    assert nexthop.verbs()[:2] == ["EHLO", "HELO"]


def test_8bit_refused_locally(dns, nexthop):
    nexthop.no_8bitmime = True
    rc, out = send(dns, nexthop, "x@example.test", opts=["-8"])
    assert rc == 69, out
    assert "554 5.6.3" in out and "8BITMIME" in out, out
    assert "MAIL" not in nexthop.verbs()
    assert nexthop.messages == []


def test_8bit_announced(dns, nexthop):
    rc, out = send(dns, nexthop, "x@example.test", opts=["-8"], msg=b"Subject: \xc3\xa9\r\n\r\nx\r\n")
    assert rc == 0, out
    assert nexthop.wait_for(1)[0].mail_params.get("BODY") == "8BITMIME"


def test_size_refused_locally(dns, nexthop):
    nexthop.size_limit = 50
    rc, out = send(dns, nexthop, "x@example.test")
    assert rc == 69, out
    assert "552 5.3.4" in out
    assert "MAIL" not in nexthop.verbs()


def test_lockstep_without_pipelining(dns, nexthop):
    nexthop.no_pipelining = True
    nexthop.permfail("RCPT", rcpt="bad@example.test")
    rc, out = send(dns, nexthop, "bad@example.test", "x@example.test")
    assert rc == 0, out
    assert "rcpt <bad@example.test>: 550 5.1.1" in out
    m = nexthop.wait_for(1)[0]
    assert m.rcpts == ["x@example.test"]


@pytest.mark.parametrize("at,reply,rc,want", [
    ("MAIL", "451 4.3.0 later", 75, "mail: 451 4.3.0 later"),
    ("RCPT", "452 4.2.2 full", 75, "rcpt <x@example.test>: 452 4.2.2 full"),
    ("DATA", "554 5.5.1 nope", 69, "data: 554 5.5.1 nope"),
    ("DATAEND", "451 4.3.0 try again", 75, "data: 451 4.3.0 try again"),
    ("DATAEND", "550 5.7.1 spam", 69, "data: 550 5.7.1 spam"),
])
def test_refusals(dns, nexthop, at, reply, rc, want):
    nexthop.reply_at(at, reply)
    got_rc, out = send(dns, nexthop, "x@example.test")
    assert got_rc == rc, out
    assert want in out, out
    assert nexthop.messages == []


def test_all_recipients_refused_no_data(dns, nexthop):
    nexthop.permfail("RCPT")
    rc, out = send(dns, nexthop, "x@example.test", "y@example.test")
    assert rc == 69, out
    assert "data: not sent" in out
    assert nexthop.messages == []


@pytest.mark.parametrize("at", ["EHLO", "MAIL", "RCPT", "DATA", "DATAEND"])
def test_drop(dns, nexthop, at):
    nexthop.drop_at(at)
    rc, out = send(dns, nexthop, "x@example.test")
    assert rc == 75, out
    assert "failed: lost connection with mx1.example.test[127.0.0.2]" in out, out
    assert "dsn 4.4.2" in out


@pytest.mark.parametrize("at", ["CONNECT", "RCPT", "DATAEND"])
def test_hang_times_out(dns, nexthop, at):
    nexthop.hang_at(at)
    t = time.monotonic()
    rc, out = probe(dns, "-p", nexthop.port, "-f", "a@b.test", "-T", "2", "send", "example.test",
                    "x@example.test", input=MSG)
    assert rc == 75, out
    assert "timed out" in out and "dsn 4.4.2" in out, out
    assert 1.5 < time.monotonic() - t < 15


def test_421(dns, nexthop):
    nexthop.reply_at("RCPT", "421 4.3.2 going down")
    rc, out = send(dns, nexthop, "x@example.test")
    assert rc == 75, out
    assert "failed: 421 4.3.2 going down" in out


def test_greeting_refused(dns, nexthop):
    nexthop.reply_at("CONNECT", "554 5.7.1 no thanks")
    rc, out = send(dns, nexthop, "x@example.test")
    assert rc == 69, out
    assert "failed: 554 5.7.1 no thanks" in out


def test_connect_refused(dns):
    nh = NextHop("127.0.0.2").start()
    port = nh.port
    nh.stop()
    rc, out = probe(dns, "-p", port, "-T", "5", "send", "example.test", "x@example.test", input=MSG)
    assert rc == 75, out
    assert "failed: connect to mx1.example.test[127.0.0.2]:%d" % port in out
    assert "dsn 4.4.1" in out


def test_large_message_identical(dns, nexthop):
    rnd = random.Random(7)
    table = bytes(b".abc xyz."[i % 9] for i in range(256))
    lines = []
    total = 0
    while total < 6 * 1024 * 1024:
        n = rnd.randrange(0, 200)
        lines.append(rnd.randbytes(n).translate(table))
        total += n + 2
    msg = b"Subject: big\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    rc, out = send(dns, nexthop, "x@example.test", msg=msg)
    assert rc == 0, out
    assert nexthop.wait_for(1, timeout=30)[0].data == msg
