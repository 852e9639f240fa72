"""HTTP API black-box tests: JSON shapes, paging, filters, detail, actions,
/metrics, history, XSS safety, HTTP protocol details and UI start-up errors.

Mail stays queued: mtad relays to [127.0.0.1]:1 where nothing listens.
Authentication and cross-site checks are in test_http_auth.py.
"""
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, wait_until
from http_helpers import QUEUED_CONF, Api, raw_http, send_mail, wait_queue_total

ID_RE = re.compile(r"^[0-9A-F]{16}$")


def message_files(m):
    """Committed message files (the queue also keeps empty spare files ready)."""
    qdir = os.path.join(m.data_dir, "queue")
    return sorted(n for n in os.listdir(qdir) if os.path.getsize(os.path.join(qdir, n)) > 0)


@pytest.fixture
def queued(mtad_factory):
    m = mtad_factory(conf=dict(QUEUED_CONF))
    return m, Api(m)


# ---- basics ------------------------------------------------------------------

def test_healthz_and_security_headers(queued):
    m, api = queued
    r = api.get("/healthz")
    assert r.status == 200 and r.body == b"ok\n"
    for path in ("/healthz", "/", "/api/stats", "/metrics", "/nope"):
        r = api.get(path)
        csp = r.header("Content-Security-Policy") or ""
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
        assert "frame-ancestors 'none'" in csp
        assert r.header("X-Content-Type-Options") == "nosniff", path
        assert r.header("X-Frame-Options") == "DENY", path
        assert r.header("Referrer-Policy"), path


def test_unknown_path_and_method(queued):
    m, api = queued
    r = api.get("/api/nothing")
    assert r.status == 404 and r.json() == {"error": "not found"}
    r = api.get("/etc/passwd")
    assert r.status == 404
    r = api.post("/api/stats")
    assert r.status == 405 and "GET" in r.header("Allow")
    r = api.get("/api/queue/retry")      # POST only
    assert r.status == 405
    r = api.request("PUT", "/api/stats")
    assert r.status in (400, 405)
    r = api.get("/assets/../../etc/passwd")
    assert r.status in (400, 404)


def test_stats_shape(queued):
    m, api = queued
    send_mail(m)
    wait_queue_total(api, 1)
    s = api.json("/api/stats")
    assert s["hostname"] == "mx.test.example"
    assert isinstance(s["uptime"], int) and s["uptime"] >= 0
    assert abs(s["now"] - s["started"] - s["uptime"]) <= 1
    q = s["queue"]
    assert q["messages"] == 1 and q["kilobytes"] >= 1 and q["bytes"] > 0
    assert q["recipients"] == 1
    assert q["active"] + q["deferred"] + q["held"] == 1
    assert 0 <= q["oldest_age"] < 60
    assert s["totals"]["accepted"] == 1 and s["totals"]["rejected"] == 0
    assert set(s["totals"]) >= {"accepted", "delivered", "deferred", "bounced", "rejected"}
    assert set(s["rates"]) == {"accepted_per_min", "delivered_per_min", "deferred_per_min",
                               "bounced_per_min", "rejected_per_min"}
    assert s["sessions"]["total"] >= 1 and s["sessions"]["active"] >= 0
    d = s["disk"]
    assert d["state"] in ("ok", "low", "critical") and d["level"] in (0, 1, 2)
    assert 0 <= d["free_percent"] <= 100 and d["total_bytes"] > 0
    assert (d["message"] is None) == (d["level"] == 0)


def test_metrics_prometheus(queued):
    m, api = queued
    send_mail(m)
    wait_queue_total(api, 1)
    r = api.get("/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples["mta_queue_messages"] == 1
    assert samples["mta_queue_kilobytes"] >= 1
    assert "mta_smtp_sessions_active" in samples
    assert samples["mta_messages_accepted_total"] == 1
    for n in ("mta_recipients_delivered_total", "mta_recipients_deferred_total",
              "mta_recipients_bounced_total", "mta_messages_rejected_total",
              "mta_tls_sessions_total", "mta_queue_oldest_message_age_seconds",
              "mta_disk_state", "mta_delivery_latency_seconds_count",
              "mta_delivery_latency_seconds_sum", 'mta_delivery_latency_seconds_bucket{le="+Inf"}'):
        assert n in samples, n
    assert samples['mta_delivery_latency_seconds_bucket{le="+Inf"}'] == \
        samples["mta_delivery_latency_seconds_count"]
    # Each metric has HELP and TYPE once.
    for n in ("mta_queue_messages", "mta_queue_kilobytes", "mta_smtp_sessions_active"):
        assert text.count("# TYPE %s gauge\n" % n) == 1
    # A rejected recipient counts.
    before = samples["mta_messages_rejected_total"]
    with socket.create_connection(("127.0.0.1", m.smtp_port), timeout=10) as s:
        f = s.makefile("rwb")
        f.readline()
        for cmd in (b"EHLO x\r\n", b"MAIL FROM:<a@b.example>\r\n"):
            f.write(cmd)
            f.flush()
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    break
        f.write(b"RCPT TO:<bad address>\r\nQUIT\r\n")
        f.flush()
        f.read()

    def rejected():
        t = api.get("/metrics").body.decode()
        v = float(re.search(r"^mta_messages_rejected_total (\S+)$", t, re.M).group(1))
        return v > before
    wait_until(rejected, 10, what="rejected counter")


def test_head_requests(queued):
    m, api = queued
    full = api.get("/api/stats")
    r = api.request("HEAD", "/api/stats")
    assert r.status == 200 and r.body == b""
    assert int(r.header("Content-Length")) > 0
    r = api.request("HEAD", "/")
    assert r.status == 200 and r.body == b""
    assert int(r.header("Content-Length")) == len(api.get("/").body)
    assert full.status == 200


# ---- queue listing ---------------------------------------------------------------

def test_queue_paging_filters(queued):
    m, api = queued
    for i in range(7):
        send_mail(m, sender="s%d@senders.example" % i,
                  rcpts=["r%d@dom%d.example" % (i, i % 2), "common@shared.example"],
                  subject="n%d" % i)
    j = wait_queue_total(api, 7)
    assert j["total"] == 7 and j["counts"]["all"] == 7
    item = j["items"][0]
    assert set(item) >= {"id", "sender", "recipients", "nrcpt", "pending", "arrival", "age",
                         "size", "state", "held", "attempts", "next_try", "last_reply"}
    assert ID_RE.match(item["id"])
    assert item["nrcpt"] == 2 and len(item["recipients"]) == 2 and item["pending"] == 2
    assert item["state"] in ("active", "deferred")
    # Arrival order (ascending) by default, descending on request.
    ids = [x["id"] for x in j["items"]]
    assert [x["sender"] for x in j["items"]] == ["s%d@senders.example" % i for i in range(7)]
    jd = api.json("/api/queue?order=desc")
    assert [x["id"] for x in jd["items"]] == ids[::-1]
    # Paging both ways.
    p2 = api.json("/api/queue?page=2&per_page=3")
    assert [x["id"] for x in p2["items"]] == ids[3:6]
    assert p2["pages"] == 3 and p2["page"] == 2 and p2["total"] == 7
    o = api.json("/api/queue?offset=5&limit=10")
    assert [x["id"] for x in o["items"]] == ids[5:]
    assert api.json("/api/queue?page=9&per_page=3")["items"] == []
    # Filters.
    assert api.json("/api/queue?sender=s3@")["total"] == 1
    assert api.json("/api/queue?sender=SENDERS.EXAMPLE")["total"] == 7
    assert api.json("/api/queue?rcpt=r4@")["total"] == 1
    assert api.json("/api/queue?domain=dom1.example")["total"] == 3
    assert api.json("/api/queue?domain=shared.example")["total"] == 7
    assert api.json("/api/queue?q=" + ids[2])["items"][0]["id"] == ids[2]
    assert api.json("/api/queue?q=" + ids[2].lower())["total"] == 1
    assert api.json("/api/queue?q=r5%40dom1")["total"] == 1
    assert api.json("/api/queue?state=held")["total"] == 0
    assert api.json("/api/queue?min_age=1h")["total"] == 0
    assert api.json("/api/queue?max_age=1h")["total"] == 7
    assert api.json("/api/queue?sender=s1&domain=dom1.example")["total"] == 1
    assert api.json("/api/queue?sender=s1&domain=dom0.example")["total"] == 0
    # Bad parameters are 400 with a reason.
    for bad in ("per_page=0", "per_page=501", "page=0", "page=x", "state=frozen",
                "min_age=yesterday", "order=up", "bogus=1"):
        r = api.get("/api/queue?" + bad)
        assert r.status == 400, bad
        assert r.json()["error"], bad


def test_message_detail(queued):
    m, api = queued
    send_mail(m, sender="alice@example.com", rcpts=["bob@example.org", "carol@example.net"],
              subject="Quarterly report")
    item = wait_queue_total(api, 1)["items"][0]
    d = api.json("/api/queue/" + item["id"])
    assert d["id"] == item["id"] and d["sender"] == "alice@example.com"
    assert d["subject"] == "Quarterly report"
    assert d["client"]["addr"] == "127.0.0.1" and d["client"]["helo"] == "client.test"
    assert isinstance(d["flags"], list)
    assert [r["address"] for r in d["recipients"]] == ["bob@example.org", "carol@example.net"]
    for r in d["recipients"]:
        assert set(r) >= {"address", "state", "attempts", "next_try", "last_reply", "dsn"}
        assert r["state"] in ("pending", "deferred")
    names = [h["name"].lower() for h in d["headers"]]
    assert "received" in names and "subject" in names and "from" in names
    assert d["headers_truncated"] is False
    # Lower-case ids work; malformed and unknown ones are 404.
    assert api.json("/api/queue/" + item["id"].lower())["id"] == item["id"]
    for bad in ("0000000000000000", "XYZ", item["id"] + "0", "../../etc"):
        r = api.get("/api/queue/" + bad)
        assert r.status == 404, bad


def test_message_deferred_shows_reply(queued):
    m, api = queued
    send_mail(m)
    item = wait_queue_total(api, 1)["items"][0]

    def deferred():
        d = api.json("/api/queue/" + item["id"])
        r = d["recipients"][0]
        return d if r["attempts"] >= 1 and r["state"] == "deferred" else None
    d = wait_until(deferred, 30, what="the first delivery attempt")
    r = d["recipients"][0]
    assert r["last_reply"], r
    assert r["next_try"] and r["next_try"] > time.time() - 5
    assert d["state"] == "deferred" and d["attempts"] >= 1
    row = api.json("/api/queue?state=deferred")["items"][0]
    assert row["id"] == item["id"] and row["last_reply"] and row["next_try"]


def test_long_headers_are_bounded(queued):
    m, api = queued
    # About 200 KiB of header fields: detail reads at most 64 KiB of them.
    raw = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: big\r\n"
    raw += b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"y" * 200) for i in range(1000))
    raw += b"\r\nbody\r\n"
    send_mail(m, sender="a@example.com", rcpts=["b@example.org"], raw=raw)
    item = wait_queue_total(api, 1)["items"][0]
    d = api.json("/api/queue/" + item["id"])
    assert d["headers_truncated"] is True
    assert 100 < len(d["headers"]) <= 500
    assert d["subject"] == "big"


# ---- XSS ---------------------------------------------------------------------------

HOSTILE = '"<script>alert(1)</script>" <evil@example.com>'


def test_hostile_from_is_escaped(queued):
    m, api = queued
    send_mail(m, sender="evil@example.com", rcpts=["victim@example.org"],
              from_header=HOSTILE, subject="<img src=x onerror=alert(2)>")
    item = wait_queue_total(api, 1)["items"][0]
    r = api.get("/api/queue/" + item["id"])
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.header("X-Content-Type-Options") == "nosniff"
    # No markup in the bytes on the wire: < and > are \u003c and \u003e.
    assert b"<" not in r.body and b">" not in r.body
    assert b"\\u003cscript\\u003e" in r.body
    d = r.json()
    assert d["subject"] == "<img src=x onerror=alert(2)>"
    froms = [h["value"] for h in d["headers"] if h["name"].lower() == "from"]
    assert froms == [HOSTILE]
    for path in ("/api/queue", "/api/stats", "/api/history"):
        body = api.get(path).body
        assert b"<" not in body, path


def test_bad_utf8_is_replaced(queued):
    m, api = queued
    raw = (b"From: a@example.com\r\nTo: b@example.org\r\n"
           b"Subject: caf\xe9 \xff\xfe ok\r\n\r\nbody\r\n")
    send_mail(m, sender="a@example.com", rcpts=["b@example.org"], raw=raw)
    item = wait_queue_total(api, 1)["items"][0]
    d = api.json("/api/queue/" + item["id"])
    assert d["subject"] == "caf\ufffd \ufffd\ufffd ok"


# ---- actions ------------------------------------------------------------------------

def test_hold_release_retry_delete(queued):
    m, api = queued
    send_mail(m, sender="keep@example.com")
    send_mail(m, sender="target@example.com")
    j = wait_queue_total(api, 2)
    qid = [x["id"] for x in j["items"] if x["sender"] == "target@example.com"][0]
    other = [x["id"] for x in j["items"] if x["id"] != qid][0]

    r = api.post("/api/queue/%s/hold" % qid)
    assert r.status == 200 and r.json() == {"id": qid, "action": "hold", "changed": True}
    d = api.json("/api/queue/" + qid)
    assert d["held"] is True and d["state"] == "held"
    assert api.json("/api/queue?state=held")["items"][0]["id"] == qid
    assert api.json("/api/stats")["queue"]["held"] == 1
    # Holding twice changes nothing; retry of a held message is a conflict.
    assert api.post("/api/queue/%s/hold" % qid).json()["changed"] is False
    r = api.post("/api/queue/%s/retry" % qid)
    assert r.status == 409 and "hold" in r.json()["error"]

    r = api.post("/api/queue/%s/release" % qid)
    assert r.status == 200 and r.json()["changed"] is True
    assert api.json("/api/queue/" + qid)["held"] is False
    r = api.post("/api/queue/%s/retry" % qid)
    assert r.status == 200 and r.json()["action"] == "retry"

    r = api.delete("/api/queue/" + qid)
    assert r.status == 200 and r.json() == {"id": qid, "action": "delete", "changed": True}
    wait_until(lambda: api.get("/api/queue/" + qid).status == 404, 10, what="deletion")
    assert qid not in message_files(m) and len(message_files(m)) == 1
    assert api.json("/api/queue")["total"] == 1
    assert api.get("/api/queue/" + other).status == 200
    assert "%s: removed" % qid in m.read_stderr()
    wait_until(lambda: "%s: removed" % qid in m.maillog(), 5, what="the mail log line")
    # Gone for good, also across a restart.
    assert m.stop() == 0
    m.start()
    assert api.get("/api/queue/" + qid).status == 404
    assert api.get("/api/queue/" + other).status == 200
    # Unknown actions and ids.
    assert api.post("/api/queue/%s/freeze" % other).status == 404
    assert api.post("/api/queue/0000000000000000/hold").status == 404
    assert api.get("/api/queue/%s/hold" % other).status == 405


def test_bulk_actions(queued):
    m, api = queued
    for i in range(6):
        send_mail(m, sender="bulk%d@%s.example" % (i, "red" if i < 4 else "blue"))
    wait_queue_total(api, 6)
    # Without a filter, ids or all=1, hold/release/delete are refused.
    for a in ("hold", "release", "delete"):
        r = api.post("/api/queue/" + a, body={})
        assert r.status == 400, a
    r = api.post("/api/queue/hold", body={"sender": "red.example"})
    assert r.status == 200 and r.json() == {"action": "hold", "matched": 4, "changed": 4, "failed": 0}
    assert api.json("/api/queue?state=held")["total"] == 4
    # Query-string filters work as well as a JSON body.
    r = api.post("/api/queue/release?sender=bulk0@")
    assert r.json()["changed"] == 1
    r = api.post("/api/queue/release", body={"all": True})
    assert r.json()["changed"] == 3
    assert api.json("/api/queue?state=held")["total"] == 0
    # ids: only those listed (bad ids match nothing).
    items = api.json("/api/queue")["items"]
    r = api.post("/api/queue/hold", body={"ids": [items[0]["id"], "nonsense", items[1]["id"].lower()]})
    assert r.json()["matched"] == 2 and r.json()["changed"] == 2
    # Retry everything (postqueue -f) and a filtered retry.
    assert api.post("/api/queue/retry", body={}).status == 200
    assert api.post("/api/queue/flush").status == 200
    r = api.post("/api/queue/retry", body={"state": "deferred"})
    assert r.status == 200
    # Delete with a filter, then all.
    r = api.post("/api/queue/delete", body={"sender": "blue.example"})
    assert r.json()["matched"] == 2 and r.json()["changed"] == 2
    wait_until(lambda: api.json("/api/queue")["total"] == 4, 10, what="filtered delete")
    r = api.post("/api/queue/delete", body={"all": True})
    assert r.json()["changed"] == 4
    wait_until(lambda: api.json("/api/queue")["total"] == 0, 10, what="delete all")
    wait_until(lambda: message_files(m) == [], 10, what="queue files gone")
    # Malformed bodies.
    assert api.post("/api/queue/hold", raw_body=b"{not json",
                    headers={"Content-Type": "application/json"}).status == 400
    assert api.post("/api/queue/hold", body=[1, 2]).status == 400
    assert api.post("/api/queue/hold", body={"state": "frozen"}).status == 400
    # A form body works too (curl -d).
    r = api.post("/api/queue/hold", raw_body=b"all=1",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200 and r.json()["matched"] == 0


# ---- history ---------------------------------------------------------------------------

def test_history(queued):
    m, api = queued
    send_mail(m)
    h = api.json("/api/history")
    assert h["interval"] == 10 and h["capacity"] == 360
    for k in ("t", "accepted", "delivered", "deferred", "bounced", "rejected",
              "sessions", "queue", "queue_kb"):
        assert isinstance(h[k], list) and len(h[k]) == len(h["t"]), k
    d = api.json("/api/history?range=24h")
    assert d["interval"] == 60 and d["capacity"] >= 1440
    assert api.get("/api/history?range=week").status == 400
    # The first sample comes about a second after start; the queue gauge follows.
    wait_until(lambda: len(api.json("/api/history")["t"]) >= 1, 5, what="first sample")


def test_history_counts_accepted(queued):
    m, api = queued
    wait_until(lambda: len(api.json("/api/history")["t"]) >= 1, 5, what="first sample")
    for _ in range(3):
        send_mail(m)

    def counted():
        h = api.json("/api/history")
        return sum(h["accepted"]) >= 3 and h["queue"][-1] >= 3
    wait_until(counted, 25, interval=0.5, what="accepted in the history")


# ---- readiness (SPEC §11.4) -----------------------------------------------------

def test_readyz_and_healthz_need_no_auth(mtad_factory):
    m = mtad_factory(conf={"username": "admin", "password": "pw"})
    anon = Api(m)
    r = anon.get("/readyz")
    assert r.status == 200 and r.body == b"ready\n", r
    assert anon.request("HEAD", "/readyz").status == 200
    assert anon.get("/healthz").status == 200
    assert anon.get("/api/stats").status == 401
    assert anon.post("/readyz").status == 405


OPEN_UI = "has no username and password: anyone who can reach it can read and change the queue"


def test_open_ui_warning_at_check(mtad_factory):
    p = mtad_factory(conf={"ui_address": "0.0.0.0"}, start=False).run_check()
    assert p.returncode == 0 and OPEN_UI in p.stderr, p.stderr
    for conf in ({"ui_address": "127.0.0.1"}, {"ui_address": "::1"},
                 {"ui_address": "0.0.0.0", "username": "admin", "password": "pw"}):
        p = mtad_factory(conf=conf, start=False).run_check()
        assert p.returncode == 0 and OPEN_UI not in p.stderr, (conf, p.stderr)


def test_open_ui_warning_on_reload(mtad_factory):
    # The UI binds every address here; the test talks to it over loopback only.
    m = mtad_factory(conf={"ui_address": "0.0.0.0", "username": "admin", "password": "pw"})
    assert OPEN_UI not in m.read_stderr()
    assert Api(m, "admin", "pw").json("/api/stats")["ui"] == {"open": False}
    del m.conf["username"]
    m.write_conf()
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in m.read_stderr(), 10, what="the reload")
    assert OPEN_UI in m.read_stderr()
    assert Api(m).json("/api/stats")["ui"] == {"open": True}


# ---- HTTP protocol ------------------------------------------------------------------------

def test_keepalive_http11_and_http10(queued):
    m, api = queued
    req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", m.ui_port), timeout=10) as s:
        f = s.makefile("rb")
        for _ in range(3):
            s.sendall(req)
            status = f.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = None
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert f.read(length) == b"ok\n"
    # HTTP/1.0 with keep-alive: two answers on one connection.
    out = raw_http(m.ui_port, b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                   b"GET /healthz HTTP/1.0\r\n\r\n", timeout=5)
    assert out.count(b"HTTP/1.0 200") + out.count(b"HTTP/1.1 200") == 2, out
    # Plain HTTP/1.0 closes after the answer.
    out = raw_http(m.ui_port, b"GET /healthz HTTP/1.0\r\n\r\n", timeout=5)
    assert b" 200 " in out and out.endswith(b"ok\n")


def test_request_limits(queued):
    m, api = queued
    # Headers past 16 KiB.
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    out = raw_http(m.ui_port, big, timeout=5)
    assert out == b"" or re.match(rb"HTTP/1\.[01] (400|413|431)", out), out[:100]
    # Too many header fields.
    many = b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n" + \
        b"".join(b"X-H%d: 1\r\n" % i for i in range(100)) + b"\r\nConnection: close\r\n\r\n"
    out = raw_http(m.ui_port, many, timeout=5)
    assert re.match(rb"HTTP/1\.[01] 431", out), out[:100]
    # A body past 64 KiB.
    r = api.post("/api/queue/hold", raw_body=b"x" * 70000,
                 headers={"Content-Type": "application/json"})
    assert r.status == 413
    # Garbage is answered (or dropped), never a crash.
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET http://evil.example/ HTTP/1.1\r\nHost: evil\r\n\r\n"):
        raw_http(m.ui_port, junk, timeout=3)
    assert api.get("/healthz").status == 200


def test_idle_connection_is_closed(mtad_factory):
    # A request must arrive whole within 30 s: an idle client must not keep a
    # slot forever (the socket's own timeout, 90 s, would fail the test).
    m = mtad_factory()
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", m.ui_port), timeout=90) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # never finished
        data = s.recv(100)
    assert time.monotonic() - start > 20     # not before its time
    assert data == b"" or data.startswith(b"HTTP/1.1 40")


# ---- the dashboard's files ---------------------------------------------------------------------

def test_dashboard_assets(queued):
    m, api = queued
    r = api.get("/")
    assert r.status == 200 and r.header("Content-Type").startswith("text/html")
    page = r.body.decode()
    srcs = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page)
    assert "/assets/app.js" in srcs and any("uplot" in s for s in srcs)
    for s in srcs:
        a = api.get(s)
        assert a.status == 200, s
        if s.endswith(".js"):
            assert a.header("Content-Type").startswith("text/javascript"), s
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
    assert "https://" not in page and "http://" not in page.replace("http://www.w3.org", "")
    # gzip and ETag revalidation.
    z = api.get("/assets/app.js", headers={"Accept-Encoding": "gzip"})
    assert z.header("Content-Encoding") == "gzip"
    plain = api.get("/assets/app.js")
    assert plain.header("Content-Encoding") is None
    assert gzip.decompress(z.body) == plain.body
    assert api.get("/assets/app.js", headers={"Accept-Encoding": "gzip;q=0"}).header("Content-Encoding") is None
    etag = plain.header("ETag")
    assert etag and etag.startswith('"')
    nm = api.get("/assets/app.js", headers={"If-None-Match": etag})
    assert nm.status == 304 and nm.body == b""
    assert api.get("/assets/nothing.js").status == 404
    assert api.get("/assets/vendor/LICENSE.uplot").status == 404


def test_embedded_assets_up_to_date():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "embed_assets.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


# ---- StatsD push ---------------------------------------------------------------------------------

def test_statsd_push(mtad_factory):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(8)
    try:
        port = sock.getsockname()[1]
        m = mtad_factory(conf={"metrics_push": "udp://127.0.0.1:%d" % port})
        data = sock.recv(2000).decode()
    finally:
        sock.close()
    lines = dict(l.split(":", 1) for l in data.split("\n"))
    assert lines["Mqueue-Messages"] == "0|g"
    assert lines["Mqueue-Kilobytes"] == "0|g"
    assert re.match(r"^\d+\|g$", lines["Active_SMTP_sessions"])
    assert lines["Messages-Accepted"].endswith("|c")
    assert m.proc.poll() is None


def test_statsd_push_localhost_and_reload(mtad_factory):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(8)
    try:
        port = sock.getsockname()[1]
        m = mtad_factory(conf={"metrics_push": "udp://localhost:%d" % port, "logs_enabled": "no",
                               "log_dir": None, "maillog_filename": None}, start=False)
        p = os.path.dirname(m.conf_path)
        while p not in ("/", "/tmp"):
            os.chmod(p, os.stat(p).st_mode | 0o011)
            p = os.path.dirname(p)
        os.chmod(m.conf_path, 0o644)
        m.start()
        assert b"Mqueue-Messages:" in sock.recv(2000)
        # A reload to a name that would need a DNS look-up keeps the old target.
        m.conf["metrics_push"] = "udp://statsd.invalid:%d" % port
        m.write_conf()
        m.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "still pushing to the previous target" in m.read_stderr(), 10,
                   what="the warning")
        assert m.proc.poll() is None
    finally:
        sock.close()


def test_statsd_push_nobody_listening(mtad_factory):
    # ECONNREFUSED on a connected UDP socket must not hurt.
    port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port.bind(("127.0.0.1", 0))
    p = port.getsockname()[1]
    port.close()
    m = mtad_factory(conf={"metrics_push": "udp://127.0.0.1:%d" % p})
    # The first push (1 s after start) draws the ICMP error, the next one
    # (at the 10 s tick) reports it.
    wait_until(lambda: "metrics_push: send failed" in m.read_stderr(), 30,
               what="the failed push")
    api = Api(m)
    assert api.get("/healthz").status == 200
    send_mail(m)


# ---- reload ---------------------------------------------------------------------------------------

def test_sighup_changes_credentials(mtad_factory):
    # mtad re-reads its configuration as mail_owner ("nobody"): no log_dir to
    # check, and the directories above data_dir searchable (pytest makes them 0700).
    m = mtad_factory(conf={"username": "admin", "password": "old-pass", "logs_enabled": "no",
                           "log_dir": None, "maillog_filename": None}, start=False)
    p = os.path.dirname(m.conf_path)
    while p not in ("/", "/tmp"):
        os.chmod(p, os.stat(p).st_mode | 0o011)
        p = os.path.dirname(p)
    os.chmod(m.conf_path, 0o644)
    m.start()
    assert Api(m, "admin", "old-pass").get("/api/stats").status == 200
    m.conf["password"] = "new-pass"
    m.write_conf()
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: Api(m, "admin", "new-pass").get("/api/stats").status == 200, 10,
               what="the new password")
    assert Api(m, "admin", "old-pass").get("/api/stats", timeout=30).status == 401
    # Removing the user name turns authentication off.
    del m.conf["username"]
    m.write_conf()
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: Api(m).get("/api/stats").status == 200, 10, what="auth off")


# ---- start-up errors (SPEC §3; test_startup.py covers the port in use) ------------------------

def test_ui_address_not_local(mtad_factory):
    m = mtad_factory(conf={"ui_address": "192.0.2.1"}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0
    lines = [l for l in err.splitlines() if l.startswith("Error:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: failed to initialize UI backend: cannot listen on 192.0.2.1:")
    assert "Cannot assign requested address" in lines[0]


def test_ui_port_in_use_reason(mtad_factory):
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        port = blocker.getsockname()[1]
        m = mtad_factory(conf={"ui_port": str(port)}, start=False)
        rc, err = m.start_expect_fail()
    finally:
        blocker.close()
    assert rc != 0
    assert ("Error: failed to initialize UI backend: cannot listen on 127.0.0.1:%d: "
            "Address already in use" % port) in err, err
    # Nothing was left half-started: the SMTP port is free again.
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", m.smtp_port))
    finally:
        s.close()


def test_mtactl_uses_the_api(queued):
    m, api = queued
    ctl = os.path.join(os.path.dirname(os.environ.get("MTAD_BIN", os.path.join(ROOT, "build", "mtad"))),
                       "mtactl")
    if not os.path.exists(ctl):
        pytest.skip("mtactl not built")
    send_mail(m, sender="ctl@example.com")
    item = wait_queue_total(api, 1)["items"][0]
    p = subprocess.run([ctl, "-c", m.conf_path, "hold", item["id"]], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert api.json("/api/queue/" + item["id"])["held"] is True


def test_bulk_actions_in_slices(queued):
    # More than one slice (1,000 messages per event-loop turn).
    m, api = queued
    n = 2300
    p = subprocess.run(["smtp-source", "-s", "20", "-m", str(n), "-l", "300",
                        "-f", "many@example.com", "-t", "to@example.org",
                        "127.0.0.1:%d" % m.smtp_port], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    wait_queue_total(api, n, timeout=60)
    r = api.post("/api/queue/hold", body={"all": True}, timeout=60)
    assert r.json() == {"action": "hold", "matched": n, "changed": n, "failed": 0}
    assert api.json("/api/stats")["queue"]["held"] == n
    r = api.post("/api/queue/delete", body={"state": "held"}, timeout=60)
    assert r.json()["matched"] == n and r.json()["changed"] == n
    wait_until(lambda: api.json("/api/queue")["total"] == 0, 30, what="all deleted")
    wait_until(lambda: message_files(m) == [], 30, what="files removed")
