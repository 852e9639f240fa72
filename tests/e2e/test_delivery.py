"""Delivery end to end: the real mtad, a fake DNS and scriptable next hops.

Each test builds a small world on loopback: FakeDNS on 127.0.0.1 (mtad's
dns_servers) whose MX/A records point at NextHop servers on 127.0.0.2,
127.0.0.3, ... all on one port, which is mtad's relay_smtp_port. Retries
are fast (retry_min_backoff = 1s) so every test ends well inside 30 s.
"""
import email
import email.policy
import os
import re
import smtplib
import socket
import time

import pytest

from conftest import wait_until
from fakedns import FakeDNS
from nexthop import NextHop

DEADLINE = 20  # seconds any single wait may take


class World:
    """FakeDNS plus next hops 127.0.0.2.. sharing one port."""

    def __init__(self, records=None, hops=2):
        self.dns = FakeDNS(records or {}).start()
        self.hops = {}
        self.port = None
        last = None
        for _ in range(20):
            try:
                first = NextHop("127.0.0.2", 0, name="hop2.test").start()
            except OSError as e:
                last = e
                continue
            self.port = first.port
            self.hops = {2: first}
            try:
                for i in range(3, 2 + hops):
                    self.hops[i] = NextHop("127.0.0.%d" % i, self.port,
                                           name="hop%d.test" % i).start()
                break
            except OSError as e:  # that port is taken on another address: again
                last = e
                for h in self.hops.values():
                    h.stop()
                self.hops = {}
        if not self.hops:
            raise RuntimeError("no common free port for the next hops: %s" % last)

    def hop(self, i):
        return self.hops[i]

    def conf(self, **extra):
        c = {
            "dns_servers": self.dns.addr,
            "relay_smtp_port": str(self.port),
            "retry_min_backoff": "1s",
            "retry_max_backoff": "2s",
            "smtp_connect_timeout": "3s",
        }
        for k, v in extra.items():
            c[k] = v
        return c

    def close(self):
        for h in self.hops.values():
            h.stop()
        self.dns.stop()


@pytest.fixture
def world_factory():
    made = []

    def make(records=None, hops=2):
        w = World(records, hops)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def message(sender, rcpts, tag, subject="test", body="Hello.\r\n", extra=""):
    return ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\nX-Test-Id: %s\r\n%s\r\n%s"
            % (sender, ", ".join("<%s>" % r for r in rcpts), subject, tag, extra, body)).encode()


def send(m, sender, rcpts, tag="t1", **kw):
    """Submit one message to mtad; returns smtplib's refused dict."""
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
        return s.sendmail(sender, rcpts, message(sender, rcpts, tag, **kw))


def tag_of(msg):
    p = email.message_from_bytes(msg.data)
    return p.get("X-Test-Id")


def log_lines(m, needle):
    return [l for l in m.maillog().splitlines() if needle in l]


def wait_log(m, needle, n=1, timeout=DEADLINE):
    return wait_until(lambda: len(log_lines(m, needle)) >= n and log_lines(m, needle),
                      timeout, what="%d mail log line(s) with %r" % (n, needle))


def queue_empty(m, timeout=DEADLINE):
    wait_until(lambda: m.queue_files() == [], timeout, what="the queue to empty")


def parse_dsn(msg):
    """The DSN as (top message, human part, list of status blocks, headers part)."""
    p = email.message_from_bytes(msg.data, policy=email.policy.compat32)
    assert p.get_content_type() == "multipart/report", p.get_content_type()
    assert p.get_param("report-type") == "delivery-status"
    parts = p.get_payload()
    assert len(parts) == 3, [x.get_content_type() for x in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    assert parts[2].get_content_type() in ("text/rfc822-headers", "message/rfc822-headers")
    blocks = parts[1].get_payload()
    return p, parts[0], blocks, parts[2]


# --- smart relay ------------------------------------------------------------

def test_smart_relay_address_literal(mtad_factory, world_factory):
    w = world_factory()
    m = mtad_factory(w.conf(smart_relay="[127.0.0.3]:%d" % w.port))
    send(m, "alice@src.test", ["bob@anywhere.test", "carol@elsewhere.test"], tag="sr1")
    msgs = w.hop(3).wait_for(1, DEADLINE)
    assert len(msgs) == 1
    assert sorted(msgs[0].rcpts) == ["bob@anywhere.test", "carol@elsewhere.test"]
    assert msgs[0].sender == "alice@src.test"
    assert tag_of(msgs[0]) == "sr1"
    queue_empty(m)
    assert w.dns.queries == [], "a bracketed address needs no DNS: %r" % w.dns.queries
    sent = wait_log(m, "status=sent", 2)
    assert all("relay=127.0.0.3[127.0.0.3]:%d" % w.port in l for l in sent), sent
    wait_log(m, ": removed")
    assert w.hop(2).messages == []


def test_smart_relay_host_port_via_mx(mtad_factory, world_factory):
    w = world_factory({
        "relay.test": {"MX": [(10, "mx.relay.test")]},
        "mx.relay.test": {"A": ["127.0.0.3"]},
    })
    m = mtad_factory(w.conf(smart_relay="relay.test:%d" % w.port))
    send(m, "alice@src.test", ["bob@anywhere.test"], tag="sr2")
    msgs = w.hop(3).wait_for(1, DEADLINE)
    assert msgs[0].rcpts == ["bob@anywhere.test"]
    assert w.dns.queried("relay.test", "MX") >= 1
    assert w.dns.queried("anywhere.test") == 0, "the recipient domain is not looked up"
    wait_log(m, "relay=mx.relay.test[127.0.0.3]:%d" % w.port)


def test_smart_relay_bracketed_host_skips_mx(mtad_factory, world_factory):
    w = world_factory({
        "relay.test": {"MX": [(10, "mx.relay.test")], "A": ["127.0.0.2"]},
        "mx.relay.test": {"A": ["127.0.0.3"]},
    })
    m = mtad_factory(w.conf(smart_relay="[relay.test]:%d" % w.port))
    send(m, "alice@src.test", ["bob@anywhere.test"], tag="sr3")
    w.hop(2).wait_for(1, DEADLINE)
    assert w.dns.queried("relay.test", "MX") == 0
    assert w.hop(3).messages == []


def test_smart_relay_unknown_host_defers(mtad_factory, world_factory):
    """A smart relay that does not resolve is a configuration problem: defer, never bounce."""
    w = world_factory({"src.test": {"MX": [(10, "mx.src.test")]},
                       "mx.src.test": {"A": ["127.0.0.3"]}})
    m = mtad_factory(w.conf(smart_relay="nowhere.test:%d" % w.port))
    send(m, "alice@src.test", ["bob@anywhere.test"], tag="sr4")
    lines = wait_log(m, "status=deferred")
    assert "Host or domain name not found" in lines[0], lines[0]
    # NXDOMAIN is 5.1.2, but a deferral always carries a 4.x.x code (as in Postfix)
    assert ", dsn=4.1.2, status=deferred" in lines[0], lines[0]
    assert log_lines(m, "status=bounced") == []
    assert len(m.queue_files()) == 1
    assert w.hop(3).messages == [] and w.hop(2).messages == []


# --- MX routing -------------------------------------------------------------

def test_mx_preference_order(mtad_factory, world_factory):
    w = world_factory({
        "dst.test": {"MX": [(20, "mx2.dst.test"), (10, "mx1.dst.test")]},
        "mx1.dst.test": {"A": ["127.0.0.3"]},
        "mx2.dst.test": {"A": ["127.0.0.2"]},
    })
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@dst.test"], tag="mx1")
    msgs = w.hop(3).wait_for(1, DEADLINE)
    assert msgs[0].rcpts == ["bob@dst.test"]
    assert w.hop(2).messages == []
    wait_log(m, "relay=mx1.dst.test[127.0.0.3]:%d" % w.port)


def test_mx_fallback_when_first_is_down(mtad_factory, world_factory):
    w = world_factory({
        "dst.test": {"MX": [(10, "mx1.dst.test"), (20, "mx2.dst.test")]},
        "mx1.dst.test": {"A": ["127.0.0.9"]},      # nothing listens there: refused
        "mx2.dst.test": {"A": ["127.0.0.3"]},
    })
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@dst.test"], tag="mx2")
    msgs = w.hop(3).wait_for(1, DEADLINE)
    assert msgs[0].rcpts == ["bob@dst.test"]
    line = wait_log(m, "status=sent")[0]
    assert "relay=mx2.dst.test[127.0.0.3]" in line
    assert log_lines(m, "status=deferred") == []


def test_mx_fallback_on_4xx_greeting(mtad_factory, world_factory):
    w = world_factory({
        "dst.test": {"MX": [(10, "mx1.dst.test"), (20, "mx2.dst.test")]},
        "mx1.dst.test": {"A": ["127.0.0.2"]},
        "mx2.dst.test": {"A": ["127.0.0.3"]},
    })
    w.hop(2).reply_at("CONNECT", "421 4.3.2 Service shutting down")
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@dst.test"], tag="mx3")
    w.hop(3).wait_for(1, DEADLINE)
    assert w.hop(2).messages == []
    assert w.hop(2).connections >= 1, "the first MX was tried first"


def test_mx_all_down_defers_then_delivers(mtad_factory, world_factory):
    w = world_factory({
        "dst.test": {"MX": [(10, "mx1.dst.test")]},
        "mx1.dst.test": {"A": ["127.0.0.3"]},
    })
    w.hop(3).reply_at("CONNECT", "421 4.3.2 Try again later", times=2)
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@dst.test"], tag="mx4")
    line = wait_log(m, "status=deferred")[0]
    assert "421 4.3.2" in line and "dsn=4.3.2" in line, line
    w.hop(3).wait_for(1, DEADLINE)
    queue_empty(m)


def test_no_mx_falls_back_to_address(mtad_factory, world_factory):
    w = world_factory({"plain.test": {"A": ["127.0.0.3"]}})
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@plain.test"], tag="a1")
    msgs = w.hop(3).wait_for(1, DEADLINE)
    assert msgs[0].rcpts == ["bob@plain.test"]
    assert w.dns.queried("plain.test", "MX") >= 1
    wait_log(m, "relay=plain.test[127.0.0.3]:%d" % w.port)


def test_address_literal_recipient(mtad_factory, world_factory):
    w = world_factory()
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@[127.0.0.3]"], tag="lit")
    msgs = w.hop(3).wait_for(1, DEADLINE)
    assert msgs[0].rcpts == ["bob@[127.0.0.3]"]
    assert w.dns.queries == []


def test_dns_tempfail_defers(mtad_factory, world_factory):
    w = world_factory({"broken.test": "SERVFAIL"})
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@broken.test"], tag="sf")
    line = wait_log(m, "status=deferred")[0]
    assert "dsn=4.4.3" in line and "try again" in line, line
    assert log_lines(m, "status=bounced") == []
    # DNS comes back: the retry delivers
    w.dns.set("broken.test", {"MX": [(10, "mx.broken.test")]})
    w.dns.set("mx.broken.test", {"A": ["127.0.0.2"]})
    w.hop(2).wait_for(1, DEADLINE)
    queue_empty(m)


# --- bounces ----------------------------------------------------------------

SENDER_DNS = {
    "src.test": {"MX": [(10, "mx.src.test")]},
    "mx.src.test": {"A": ["127.0.0.3"]},
}


def dns_with(extra):
    d = dict(SENDER_DNS)
    d.update(extra)
    return d


def wait_dsn(w, timeout=DEADLINE):
    """The DSN arrives at the sender's domain (127.0.0.3) from <>."""
    msgs = w.hop(3).wait_for(1, timeout)
    dsns = [x for x in msgs if x.sender == ""]
    assert dsns, msgs
    return dsns[0]


def test_null_mx_bounces_at_once(mtad_factory, world_factory):
    w = world_factory(dns_with({"nomail.test": {"MX": [(0, ".")]}}))
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@nomail.test"], tag="nmx")
    dsn = wait_dsn(w)
    assert dsn.rcpts == ["alice@src.test"]
    _, human, blocks, _ = parse_dsn(dsn)
    rcpt = blocks[1]
    assert rcpt["Final-Recipient"].replace(" ", "").lower() == "rfc822;bob@nomail.test"
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"] == "5.1.10"
    assert "null MX" in rcpt["Diagnostic-Code"]
    line = wait_log(m, "to=<bob@nomail.test>")[0]
    assert "status=bounced" in line and "relay=none" in line, line
    wait_log(m, "sender non-delivery notification")
    queue_empty(m)
    assert w.hop(2).messages == []


def test_nxdomain_bounces_at_once(mtad_factory, world_factory):
    w = world_factory(dns_with({}))
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@does-not-exist.test"], tag="nx")
    dsn = wait_dsn(w)
    _, human, blocks, _ = parse_dsn(dsn)
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"].startswith("5.")
    assert "Host or domain name not found" in blocks[1]["Diagnostic-Code"]
    line = wait_log(m, "status=bounced")[0]
    assert "Host or domain name not found" in line
    queue_empty(m)


def test_5xx_bounce_dsn_fields(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).permfail("RCPT", rcpt="nobody@dst.test")
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["nobody@dst.test", "bob@dst.test"], tag="5xx",
         subject="Quarterly numbers")
    # the good recipient is delivered in the same transaction
    ok = w.hop(2).wait_for(1, DEADLINE)
    assert ok[0].rcpts == ["bob@dst.test"]
    dsn = wait_dsn(w)
    assert dsn.rcpts == ["alice@src.test"]
    top, human, blocks, hdrs = parse_dsn(dsn)
    assert top["From"].startswith("MAILER-DAEMON@mx.test.example")
    assert "alice@src.test" in top["To"]
    assert top["Auto-Submitted"] is not None
    permsg = blocks[0]
    assert "mx.test.example" in permsg["Reporting-MTA"]
    assert len(blocks) == 2, "only the failed recipient is reported: %r" % [
        dict(b) for b in blocks]
    r = blocks[1]
    assert r["Final-Recipient"].replace(" ", "").lower() == "rfc822;nobody@dst.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Diagnostic-Code"].lower().startswith("smtp;")
    assert "550 5.1.1 User unknown" in r["Diagnostic-Code"]
    text = human.get_payload(decode=True).decode()
    assert "nobody@dst.test" in text
    h = hdrs.get_payload()
    if isinstance(h, list):
        h = "".join(x.as_string() for x in h)
    assert "Subject: Quarterly numbers" in h
    assert "X-Test-Id: 5xx" in h
    assert "Hello." not in h, "only the headers come back"
    line = wait_log(m, "to=<nobody@dst.test>")[0]
    assert "status=bounced" in line and "dsn=5.1.1" in line
    assert "said: 550 5.1.1 User unknown (in reply to RCPT TO command)" in line, line
    wait_log(m, "sender non-delivery notification")
    queue_empty(m)


def test_5xx_after_data_bounces_all(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).permfail("DATAEND", reply="554 5.7.1 Message rejected as spam")
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["a@dst.test", "b@dst.test"], tag="dataend")
    dsn = wait_dsn(w)
    _, _, blocks, _ = parse_dsn(dsn)
    finals = sorted(b["Final-Recipient"].split(";")[1].strip() for b in blocks[1:])
    assert finals == ["a@dst.test", "b@dst.test"]
    assert all(b["Status"] == "5.7.1" for b in blocks[1:])
    assert len(log_lines(m, "status=bounced")) == 2
    assert len([l for l in log_lines(m, "sender non-delivery notification")]) == 1


def test_no_dsn_for_null_sender(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).permfail("RCPT")
    m = mtad_factory(w.conf())
    send(m, "", ["bob@dst.test"], tag="null")
    wait_log(m, "status=bounced")
    # A DSN is queued (and logged) before the original is removed: once the
    # original's "removed" line is there and the queue is empty, none can follow.
    wait_log(m, ": removed")
    queue_empty(m)
    assert log_lines(m, "sender non-delivery notification") == []
    assert log_lines(m, "discarded")
    assert w.hop(3).messages == [], "no DSN to <>"


def test_bounce_that_bounces_is_dropped(mtad_factory, world_factory):
    """The original and its DSN both fail: one DSN, then nothing (no loop)."""
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).permfail("RCPT")
    w.hop(3).permfail("RCPT", reply="550 5.1.1 Sender mailbox gone")
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@dst.test"], tag="loop")
    wait_log(m, "to=<alice@src.test>")
    wait_log(m, "discarded")
    # the original and its DSN both gone: nothing is left that could be sent
    wait_until(lambda: len(log_lines(m, ": removed")) == 2, DEADLINE, what="both removed")
    queue_empty(m)
    assert len(log_lines(m, "sender non-delivery notification")) == 1
    assert len(log_lines(m, "status=bounced")) == 2
    assert w.hop(3).messages == []


# --- retries ----------------------------------------------------------------

def test_4xx_then_success_on_retry(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", times=1)
    m = mtad_factory(w.conf())
    t0 = time.monotonic()
    send(m, "alice@src.test", ["bob@dst.test"], tag="retry")
    line = wait_log(m, "status=deferred")[0]
    assert "dsn=4.3.0" in line and "451 4.3.0" in line, line
    msgs = w.hop(2).wait_for(1, DEADLINE)
    took = time.monotonic() - t0
    assert took >= 0.9, "the retry waited retry_min_backoff (1s), took %.2fs" % took
    assert msgs[0].rcpts == ["bob@dst.test"]
    queue_empty(m)
    sent = wait_log(m, "status=sent")[0]
    assert "to=<bob@dst.test>" in sent
    assert w.hop(3).messages == [], "no DSN for a temporary failure"


def test_flush_retries_at_once(mtad_factory, world_factory):
    import json
    import urllib.request
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", times=1)
    m = mtad_factory(w.conf(retry_min_backoff="1h", retry_max_backoff="2h"))
    send(m, "alice@src.test", ["bob@dst.test"], tag="flush")
    wait_log(m, "status=deferred")
    qid = m.queue_files()[0]
    with urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/api/queue/%s" % (m.ui_port, qid),
            headers={"X-Requested-With": "mtad-test"}), timeout=10) as r:
        row = json.loads(r.read())
    row = row.get("message", row)
    # the next attempt is an hour away, not now
    assert row["next_try"] >= time.time() + 3000, row
    assert w.hop(2).messages == []
    req = urllib.request.Request("http://127.0.0.1:%d/api/queue/flush" % m.ui_port,
                                 data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-Requested-With": "mtad-test"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200, r.read()
    w.hop(2).wait_for(1, DEADLINE)
    queue_empty(m)


def test_queue_lifetime_expiry(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", reply="450 4.2.0 Mailbox busy")
    m = mtad_factory(w.conf(queue_lifetime="3s"))
    t0 = time.monotonic()
    send(m, "alice@src.test", ["bob@dst.test"], tag="exp")
    dsn = wait_dsn(w, DEADLINE)
    took = time.monotonic() - t0
    assert took >= 2.9, "bounced after %.2fs, before queue_lifetime" % took
    _, _, blocks, _ = parse_dsn(dsn)
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] in ("4.2.0", "5.2.0"), blocks[1]["Status"]  # the last reply's detail
    assert "450 4.2.0 Mailbox busy" in blocks[1]["Diagnostic-Code"]
    assert len(log_lines(m, "to=<bob@dst.test>")) >= 2, "tried more than once"
    wait_log(m, "status=expired, returned to sender")
    queue_empty(m)


def test_held_message_waits(mtad_factory, world_factory):
    """A held message is not delivered until released (through the API)."""
    import urllib.request
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", times=2)
    m = mtad_factory(w.conf(retry_min_backoff="2s", retry_max_backoff="2s"))
    send(m, "alice@src.test", ["bob@dst.test"], tag="hold")
    wait_log(m, "status=deferred")
    qid = m.queue_files()[0]
    # a control message, deferred after the held one: due no earlier than it
    send(m, "alice@src.test", ["carol@dst.test"], tag="control")
    wait_until(lambda: len(log_lines(m, "status=deferred")) == 2, DEADLINE,
               what="the control message deferred")

    def post(action):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/api/queue/%s/%s" % (m.ui_port, qid, action), data=b"",
            method="POST", headers={"X-Requested-With": "mtad-test"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    assert post("hold") == 200
    # the control message's retry comes and is delivered; the held one, due as early, is not
    msgs = w.hop(2).wait_for(1, DEADLINE)
    assert [x.rcpts for x in msgs] == [["carol@dst.test"]], "held: not delivered"
    wait_until(lambda: m.queue_files() == [qid], DEADLINE, what="the control message gone")
    assert w.hop(2).messages[0].rcpts == ["carol@dst.test"]
    assert len(w.hop(2).messages) == 1
    assert post("release") == 200
    w.hop(2).wait_for(2, DEADLINE)
    queue_empty(m)


# --- cc_mta -----------------------------------------------------------------

def test_cc_copy_same_recipients(mtad_factory, world_factory):
    w = world_factory({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
        "other.test": {"A": ["127.0.0.2"]},
    })
    m = mtad_factory(w.conf(cc_mta="[127.0.0.3]:%d" % w.port))
    send(m, "alice@src.test", ["bob@dst.test", "carol@other.test"], tag="cc")
    cc = w.hop(3).wait_for(1, DEADLINE)
    assert sorted(cc[0].rcpts) == ["bob@dst.test", "carol@other.test"]
    assert cc[0].sender == "alice@src.test"
    assert tag_of(cc[0]) == "cc"
    got = w.hop(2).wait_for(2, DEADLINE)
    assert sorted(r for x in got for r in x.rcpts) == ["bob@dst.test", "carol@other.test"]
    queue_empty(m)
    assert len(log_lines(m, "cc_mta copy")) == 1
    sent = [l for l in log_lines(m, "status=sent") if " to=<" in l]
    assert len(sent) == 2, "the cc copy is not counted as a delivery"


def test_cc_failure_never_bounces(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }), hops=3)
    w.hop(4).permfail("RCPT", reply="550 5.7.1 Not today")
    m = mtad_factory(w.conf(cc_mta="[127.0.0.4]:%d" % w.port))
    send(m, "alice@src.test", ["bob@dst.test"], tag="ccfail")
    w.hop(2).wait_for(1, DEADLINE)
    lines = wait_log(m, "cc_mta copy", 2)
    assert all("status=deferred" in l for l in lines), lines
    assert len(m.queue_files()) == 1, "kept until the cc copy is done"
    assert w.hop(3).messages == [], "no DSN for a cc failure"
    assert log_lines(m, "status=bounced") == []
    w.hop(4).accept()
    cc = w.hop(4).wait_for(1, DEADLINE)
    assert cc[0].rcpts == ["bob@dst.test"]
    queue_empty(m)


def test_cc_copy_expires_without_bounce(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    m = mtad_factory(w.conf(cc_mta="[127.0.0.9]:%d" % w.port, queue_lifetime="3s"))
    send(m, "alice@src.test", ["bob@dst.test"], tag="ccexp")
    w.hop(2).wait_for(1, DEADLINE)
    queue_empty(m)
    assert log_lines(m, "cc copy dropped")
    assert w.hop(3).messages == []


def test_cc_ignored_with_smart_relay(mtad_factory, world_factory):
    w = world_factory()
    m = mtad_factory(w.conf(smart_relay="[127.0.0.2]:%d" % w.port,
                            cc_mta="[127.0.0.3]:%d" % w.port))
    send(m, "alice@src.test", ["bob@dst.test"], tag="ccsr")
    w.hop(2).wait_for(1, DEADLINE)
    queue_empty(m)
    assert w.hop(3).messages == []
    assert "cc_mta" in m.read_stderr()


# --- grouping and connections -------------------------------------------------

def test_many_recipients_one_transaction_per_destination(mtad_factory, world_factory):
    w = world_factory({
        "a.test": {"MX": [(10, "mx.a.test")]}, "mx.a.test": {"A": ["127.0.0.2"]},
        "b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": ["127.0.0.3"]},
        "c.test": {"MX": [(10, "mx.c.test")]}, "mx.c.test": {"A": ["127.0.0.4"]},
    }, hops=3)
    rcpts = ["u%d@%s.test" % (i, "abc"[i % 3]) for i in range(60)]
    rcpts += ["U60@A.TEST"]     # case does not make a new destination
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", rcpts, tag="many")
    for i, d in ((2, "a"), (3, "b"), (4, "c")):
        msgs = w.hop(i).wait_for(1, DEADLINE)
        want = [r for r in rcpts if r.lower().endswith("@%s.test" % d)]
        assert len(msgs) == 1, "one transaction at %s: %r" % (d, msgs)
        assert sorted(msgs[0].rcpts) == sorted(want)
        assert w.hop(i).verbs().count("MAIL") == 1
    queue_empty(m)
    assert len(log_lines(m, "status=sent")) == len(rcpts)
    assert w.dns.queried("a.test", "MX") == 1, "one look-up per domain"


def test_connection_reuse(mtad_factory, world_factory):
    w = world_factory({"dst.test": {"MX": [(10, "mx.dst.test")]},
                       "mx.dst.test": {"A": ["127.0.0.2"]}})
    m = mtad_factory(w.conf(destination_concurrency="1"))
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
        for i in range(20):
            s.sendmail("alice@src.test", ["bob%d@dst.test" % i],
                       message("alice@src.test", ["bob%d@dst.test" % i], "reuse%d" % i))
    msgs = w.hop(2).wait_for(20, DEADLINE)
    assert w.hop(2).connections == 1, "20 messages, %d connections" % w.hop(2).connections
    assert sorted(tag_of(x) for x in msgs) == sorted("reuse%d" % i for i in range(20))
    # a message soon after reuses the idle connection
    send(m, "alice@src.test", ["late@dst.test"], tag="late")
    w.hop(2).wait_for(21, DEADLINE)
    assert w.hop(2).connections == 1
    queue_empty(m)
    # the idle connection is closed with QUIT after a few seconds
    w.hop(2).wait_until(lambda nh: nh.quits >= 1, DEADLINE, what="QUIT on the idle connection")


def test_concurrency_limit(mtad_factory, world_factory):
    import threading
    w = world_factory({"dst.test": {"MX": [(10, "mx.dst.test")]},
                       "mx.dst.test": {"A": ["127.0.0.2"]}})
    hop = w.hop(2)
    hop.hang_seconds = 1.5
    hop.hang_at("DATAEND", times=4)   # keep transactions busy, so connections pile up
    m = mtad_factory(w.conf(destination_concurrency="3"))
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            with hop._lock:
                peak[0] = max(peak[0], len(hop._socks))
            time.sleep(0.005)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
            for i in range(12):
                s.sendmail("alice@src.test", ["b%d@dst.test" % i],
                           message("alice@src.test", ["b%d@dst.test" % i], "cl%d" % i))
        # the hung ones end as lost connections: deferred, delivered on the retry
        hop.wait_for(12, DEADLINE)
        queue_empty(m)
    finally:
        stop.set()
        t.join(2)
    assert peak[0] <= 3, "at most destination_concurrency connections, saw %d" % peak[0]
    assert peak[0] >= 2, "busy connections make the scheduler open more (saw %d)" % peak[0]


def test_sighup_keeps_delivering(mtad_factory, world_factory):
    import signal
    w = world_factory({"dst.test": {"MX": [(10, "mx.dst.test")]},
                       "mx.dst.test": {"A": ["127.0.0.2"]}})
    m = mtad_factory(w.conf(), start=False)
    # mtad re-reads its file as mail_owner: let it through pytest's 0700 directories
    d = os.path.dirname(m.conf_path)
    while d not in ("/", "/tmp", ""):
        os.chmod(d, os.stat(d).st_mode | 0o011)
        d = os.path.dirname(d)
    m.start()
    send(m, "alice@src.test", ["bob@dst.test"], tag="h1")
    w.hop(2).wait_for(1, DEADLINE)
    dns2 = FakeDNS({"dst.test": {"MX": [(10, "mx.dst.test")]},
                    "mx.dst.test": {"A": ["127.0.0.3"]}}).start()
    try:
        m.conf["dns_servers"] = dns2.addr
        m.write_conf()
        os.chmod(m.conf_path, 0o644)
        m.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in m.read_stderr(), DEADLINE, what="reload")
        # once the idle connection is gone, the new resolver's answer is used
        # (the cache of the old one was dropped with it)
        w.hop(2).wait_until(lambda nh: nh.quits >= 1, DEADLINE, what="idle QUIT")
        send(m, "alice@src.test", ["carol@dst.test"], tag="h2")
        w.hop(3).wait_for(1, DEADLINE)
    finally:
        dns2.stop()


def test_delay_warning(mtad_factory, world_factory):
    """delay_warning_time: one 'delayed' DSN per message while it is still retried."""
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", reply="452 4.2.2 Mailbox full")
    m = mtad_factory(w.conf(delay_warning_time="1s", queue_lifetime="1h"))
    send(m, "alice@src.test", ["bob@dst.test"], tag="dw")
    dsn = wait_dsn(w)
    p, _, blocks, _ = parse_dsn(dsn)
    assert "Delayed" in p["Subject"], p["Subject"]
    assert blocks[1]["Action"] == "delayed"
    assert blocks[1]["Status"].startswith("4."), blocks[1]["Status"]
    wait_log(m, "sender delay notification")
    # retried on, but warned only once
    wait_log(m, "status=deferred", 4)
    assert len(log_lines(m, "sender delay notification")) == 1
    assert len(m.queue_files()) == 1
    w.hop(2).accept()
    w.hop(2).wait_for(1, DEADLINE)
    queue_empty(m)


def test_delay_warning_once_across_a_restart(mtad_factory, world_factory):
    """The delay warning is recorded in the queue file (flag WARNED): a message
    loaded again from its file - after a restart, or when it was parked outside
    the window (queue_active_limit) and comes back, the same path - is not
    warned about twice."""
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", reply="452 4.2.2 Mailbox full")
    m = mtad_factory(w.conf(delay_warning_time="1s", queue_lifetime="1h"))
    send(m, "alice@src.test", ["bob@dst.test"], tag="dw1")
    wait_dsn(w)
    wait_log(m, "sender delay notification")
    n = len(log_lines(m, "status=deferred"))
    assert m.stop() == 0
    m.start()
    wait_log(m, "status=deferred", n + 3)
    notes = log_lines(m, "sender delay notification")
    assert len(notes) == 1, notes
    w.hop(2).accept()
    w.hop(2).wait_for(1, DEADLINE)


def test_ipv6_next_hops(mtad_factory, world_factory):
    """AAAA before A, and an IPv6 smart relay literal."""
    try:
        v6 = NextHop("::1", 0, name="hop6.test").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        w = world_factory({"dst.test": {"MX": [(10, "mx.dst.test")]},
                           "mx.dst.test": {"AAAA": ["::1"], "A": ["127.0.0.2"]}})
        m = mtad_factory(w.conf(relay_smtp_port=str(v6.port)))
        send(m, "alice@src.test", ["bob@dst.test"], tag="v6")
        msgs = v6.wait_for(1, DEADLINE)
        assert msgs[0].rcpts == ["bob@dst.test"]
        wait_log(m, "relay=mx.dst.test[::1]:%d" % v6.port)
        m2 = mtad_factory(w.conf(smart_relay="[::1]:%d" % v6.port))
        send(m2, "alice@src.test", ["carol@elsewhere.test"], tag="v6b")
        v6.wait_for(2, DEADLINE)
        queue_empty(m)
        queue_empty(m2)
    finally:
        v6.stop()


def test_connection_lost_mid_transaction_defers(mtad_factory, world_factory):
    w = world_factory(dns_with({"dst.test": {"MX": [(10, "mx.dst.test")]},
                                "mx.dst.test": {"A": ["127.0.0.2"]}}))
    w.hop(2).drop_at("DATA", times=1)
    m = mtad_factory(w.conf())
    send(m, "alice@src.test", ["bob@dst.test"], tag="drop")
    line = wait_log(m, "status=deferred")[0]
    assert "lost connection" in line and "relay=mx.dst.test[127.0.0.2]" in line, line
    msgs = w.hop(2).wait_for(1, DEADLINE)
    assert tag_of(msgs[0]) == "drop"
    queue_empty(m)
    assert w.hop(3).messages == [], "no DSN for a lost connection"
