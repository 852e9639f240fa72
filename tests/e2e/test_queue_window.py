"""The window of messages in memory (SPEC §11.5, queue_active_limit): with a
window of 20 and a few hundred messages queued while the relay refuses, the
rest are parked on disk; counters stay exact, parked messages can be looked
at and acted on, a restart greets at once, and when the relay comes back
every message is delivered exactly once.
"""
import collections
import json
import re
import smtplib
import time
import urllib.request

from conftest import metric, wait_until
from test_mtactl import ctl
from test_delivery import DEADLINE, dns_with, message, queue_empty, tag_of, world_factory  # noqa: F401

N = 200
LIMIT = 20


def api(m, path, data=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (m.ui_port, path), data=data,
                                 method="POST" if data is not None else "GET",
                                 headers={"X-Requested-With": "mtad-test",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read() or b"null")


def send_many(m, n, prefix):
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=30) as s:
        for i in range(n):
            tag = "%s%d" % (prefix, i)
            s.sendmail("alice@src.test", ["bob@dst.test"],
                       message("alice@src.test", ["bob@dst.test"], tag))


def test_window_parks_and_delivers_everything_once(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", reply="451 4.3.0 Not now")
    m = mtad_factory(w.conf(retry_min_backoff="1h", retry_max_backoff="2h",
                            queue_active_limit=str(LIMIT)))
    send_many(m, N, "w")

    # every message tried once and deferred: the parked ones came back in turn
    wait_until(lambda: metric(m, "mta_queue_deferred_messages") == N, DEADLINE * 3,
               what="all %d deferred" % N)
    assert metric(m, "mta_queue_messages") == N
    assert metric(m, "mta_queue_recipients") == N
    assert metric(m, "mta_queue_held_messages") == 0
    _, st = api(m, "/api/stats")
    assert st["queue"]["messages"] == N and st["queue"]["deferred"] == N, st["queue"]
    files = m.queue_files()
    assert len(files) == N

    # the listing pages through the window and then the parked messages
    seen = []
    for off in range(0, N, 50):
        _, page = api(m, "/api/queue?offset=%d&limit=50" % off)
        assert page["total"] == N, page["total"]
        seen += [r["id"] for r in page["items"]]
    assert sorted(seen) == files
    assert page["counts"]["deferred"] == N
    # the API's cursor pages through what is parked, and mtactl queue uses it: every id once
    _, p1 = api(m, "/api/queue?offset=0&limit=%d" % (LIMIT + 10))
    assert p1["cursor"] > 0 and len(p1["items"]) == LIMIT + 10
    ids = [r["id"] for r in p1["items"]]
    cur = p1["cursor"]
    while cur:
        _, pn = api(m, "/api/queue?cursor=%d&limit=37" % cur)
        ids += [r["id"] for r in pn["items"]]
        cur = pn.get("cursor")
    assert sorted(ids) == files
    p = ctl(m, "queue")
    assert p.returncode == 0, p.stderr
    listed = re.findall(r"^([0-9A-F]{16})\b", p.stdout, re.M)
    assert sorted(listed) == files, p.stdout[-500:]

    # a search reaches parked messages (one recipient address per message here: the sender)
    _, found = api(m, "/api/queue?sender=alice@src.test&limit=500")
    assert found["total"] == N and len(found["items"]) == N and "partial" not in found
    _, none = api(m, "/api/queue?rcpt=nobody@dst.test")
    assert none["total"] == 0 and none["items"] == []

    # qshape counts the parked messages too (read from their files), per domain
    _, shape = api(m, "/api/qshape")
    assert shape["total"]["count"] == N and "partial" not in shape, shape
    assert [(d["domain"], d["count"]) for d in shape["domains"]] == [("dst.test", N)], shape
    p = ctl(m, "qshape")
    assert p.returncode == 0 and re.search(r"^\s*TOTAL\s+%d\b" % N, p.stdout, re.M), p.stdout
    assert "partial" not in p.stdout

    qid = files[0]
    code, row = api(m, "/api/queue/%s" % qid)
    assert code == 200
    row = row.get("message", row)
    assert row["id"] == qid and row["state"] == "deferred", row
    assert api(m, "/api/queue/%s/hold" % qid, b"")[0] == 200
    wait_until(lambda: metric(m, "mta_queue_held_messages") == 1, DEADLINE, what="one held")
    assert metric(m, "mta_queue_messages") == N
    assert metric(m, "mta_queue_deferred_messages") == N - 1

    # a restart with the backlog: greets at once, counts everything, takes new mail
    assert m.stop() == 0
    t0 = time.monotonic()
    m.start()
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
        s.sendmail("alice@src.test", ["bob@dst.test"],
                   message("alice@src.test", ["bob@dst.test"], "after"))
    took = time.monotonic() - t0
    assert took < 10, "restart to 250 took %.1fs" % took
    wait_until(lambda: "queue recovered: " in m.read_stderr(), DEADLINE, what="recovery done")
    wait_until(lambda: metric(m, "mta_queue_messages") == N + 1, DEADLINE,
               what="%d queued after the restart" % (N + 1))
    wait_until(lambda: metric(m, "mta_queue_held_messages") == 1, DEADLINE, what="still held")

    # the relay is back: a flush brings everything in, the held one stays
    w.hop(2).accept()
    assert api(m, "/api/queue/flush", b"{}")[0] == 200
    w.hop(2).wait_for(N, DEADLINE * 3)
    wait_until(lambda: metric(m, "mta_queue_messages") == 1, DEADLINE, what="only the held one left")
    wait_until(lambda: m.queue_files() == [qid], DEADLINE, what="the held one's file alone")
    assert api(m, "/api/queue/%s/release" % qid, b"")[0] == 200
    assert api(m, "/api/queue/flush", b"{}")[0] == 200
    w.hop(2).wait_for(N + 1, DEADLINE)
    queue_empty(m)
    tags = collections.Counter(tag_of(x) for x in w.hop(2).messages)
    assert set(tags) == {"w%d" % i for i in range(N)} | {"after"}, tags
    assert [t for t, c in tags.items() if c != 1] == []
    assert metric(m, "mta_queue_messages") == 0
    assert metric(m, "mta_queue_kilobytes") == 0


def test_window_new_mail_not_starved(mtad_factory, world_factory):
    """A backlog for a dead destination never keeps new mail for a live one waiting."""
    w = world_factory(dns_with({
        "dead.test": {"MX": [(10, "mx.dead.test")]},
        "mx.dead.test": {"A": ["127.0.0.2"]},
        "live.test": {"MX": [(10, "mx.live.test")]},
        "mx.live.test": {"A": ["127.0.0.3"]},
    }))
    w.hop(2).tempfail("RCPT", reply="451 4.3.0 Not now")
    m = mtad_factory(w.conf(retry_min_backoff="1h", retry_max_backoff="2h",
                            queue_active_limit=str(LIMIT)))
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=30) as s:
        for i in range(100):
            s.sendmail("alice@src.test", ["x@dead.test"],
                       message("alice@src.test", ["x@dead.test"], "d%d" % i))
    wait_until(lambda: metric(m, "mta_queue_deferred_messages") == 100, DEADLINE * 3,
               what="the backlog deferred")
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=30) as s:
        for i in range(30):
            s.sendmail("alice@src.test", ["y@live.test"],
                       message("alice@src.test", ["y@live.test"], "l%d" % i))
    w.hop(3).wait_for(30, DEADLINE)
    wait_until(lambda: metric(m, "mta_queue_messages") == 100, DEADLINE, what="backlog stays")
    assert sorted(tag_of(x) for x in w.hop(3).messages) == sorted("l%d" % i for i in range(30))
