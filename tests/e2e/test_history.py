"""Per-attempt delivery history kept in the queue file ('a' records).

A recipient deferred twice by the next hop, then delivered, shows its three
attempts (time, host, reply, dsn, result) in /api/queue/ID and `mtactl show`
while the message is still queued (for its other recipient), after a
restart too, and when mtactl reads the stopped data_dir.
"""
import json
import re

from conftest import wait_until
from http_helpers import Api
from test_delivery import DEADLINE, dns_with, send, \
    world_factory  # noqa: F401  (fixture)
from test_mtactl import ctl

DNS = {"dst.test": {"MX": [(10, "mx.dst.test")]}, "mx.dst.test": {"A": ["127.0.0.2"]}}


def attempts_of(row, rcpt):
    return [a for a in row["history"] if a["recipient"] == rcpt]


def check_a(row, port):
    """a@dst.test: deferred, deferred, delivered, each from 127.0.0.2."""
    got = attempts_of(row, "a@dst.test")
    assert [a["result"] for a in got] == ["deferred", "deferred", "delivered"], got
    assert [a["attempt"] for a in got] == [1, 2, 3], got
    for a in got:
        assert a["host"] == "mx.dst.test[127.0.0.2]:%d" % port, a
        assert a["time"] >= row["arrival"] and isinstance(a["delays"], list), a
        assert len(a["delays"]) == 4 and a["delay"] >= 0, a
    assert got[0]["reply"].startswith("451 4.7.1 greylisted a") and \
        "in reply to RCPT TO command" in got[0]["reply"], got[0]
    assert got[0]["dsn"] == "4.7.1" and got[1]["dsn"] == "4.7.1"
    assert got[2]["dsn"].startswith("2."), got[2]
    assert got[2]["reply"].startswith("250"), got[2]
    assert got[0]["time"] <= got[1]["time"] <= got[2]["time"]
    return got


def check_show(text, port):
    assert "History:" in text, text
    hist = text.split("History:", 1)[1].split("Headers:", 1)[0]
    lines = [l for l in hist.splitlines() if "<a@dst.test>" in l]
    assert len(lines) == 3, hist
    assert "deferred" in lines[0] and "#1" in lines[0], lines
    assert "delivered" in lines[2] and "#3" in lines[2], lines
    assert all("mx.dst.test[127.0.0.2]:%d" % port in l for l in lines), lines
    assert "451 4.7.1 greylisted a" in hist, hist


def test_three_attempts_in_api_and_mtactl(mtad_factory, world_factory):
    w = world_factory(dns_with(DNS))
    hop = w.hop(2)
    hop.tempfail("RCPT", rcpt="a@dst.test", times=2, reply="451 4.7.1 greylisted a")
    hop.tempfail("RCPT", rcpt="b@dst.test", reply="451 4.2.0 mailbox b busy")
    m = mtad_factory(w.conf())
    api = Api(m)
    send(m, "alice@src.test", ["a@dst.test", "b@dst.test"], tag="hist")
    hop.wait_for(1, DEADLINE)
    qid = wait_until(lambda: (lambda j: j["items"][0]["id"] if j["total"] == 1 else None)(
        api.json("/api/queue")), DEADLINE, what="the message listed")

    def delivered_a():
        row = api.json("/api/queue/%s" % qid)
        return row if any(a["result"] == "delivered" for a in attempts_of(row, "a@dst.test")) \
            else None
    row = wait_until(delivered_a, DEADLINE, what="a@dst.test delivered in the history")
    check_a(row, w.port)
    b = attempts_of(row, "b@dst.test")
    assert b and all(a["result"] == "deferred" for a in b), b
    assert b[0]["reply"].startswith("451 4.2.0 mailbox b busy"), b[0]
    assert row["history_omitted"] == 0
    # the state in memory agrees with the history
    ra = [r for r in row["recipients"] if r["address"] == "a@dst.test"][0]
    assert ra["state"] == "delivered" and ra["attempts"] == 3, ra

    p = ctl(m, "show", qid)
    assert p.returncode == 0, p.stderr
    check_show(p.stdout, w.port)
    j = json.loads(ctl(m, "show", qid, "--json").stdout)
    check_a(j, w.port)

    # a restart reads it back from the file; so does mtactl with mtad stopped
    assert m.stop() == 0
    p = ctl(m, "show", qid)
    assert p.returncode == 0, p.stderr
    check_show(p.stdout, w.port)
    m.conf["retry_min_backoff"] = "1h"
    m.conf["retry_max_backoff"] = "2h"
    m.write_conf()
    m.start()
    api = Api(m)
    row = api.json("/api/queue/%s" % qid)
    check_a(row, w.port)


def test_history_in_ui_detail_is_escaped(mtad_factory, world_factory):
    """A peer's reply is shown as text: markup in it stays text (the API gives it as is)."""
    w = world_factory(dns_with(DNS))
    w.hop(2).tempfail("RCPT", reply="451 4.7.1 <b>bold</b> & co")
    m = mtad_factory(w.conf(retry_min_backoff="1h", retry_max_backoff="2h"))
    api = Api(m)
    send(m, "alice@src.test", ["x@dst.test"], tag="esc")
    qid = wait_until(lambda: (lambda j: j["items"][0]["id"] if j["total"] == 1 else None)(
        api.json("/api/queue")), DEADLINE, what="the message listed")
    row = wait_until(lambda: (lambda r: r if r["history"] else None)(
        api.json("/api/queue/%s" % qid)), DEADLINE, what="one attempt")
    assert row["history"][0]["reply"].startswith("451 4.7.1 <b>bold</b> & co"), row
    assert re.match(r"^mx\.dst\.test\[127\.0\.0\.2\]:\d+$", row["history"][0]["host"])
