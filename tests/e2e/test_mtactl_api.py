"""mtactl against an API that misbehaves: every command's error text and exit
status when the daemon answers 4xx/5xx, a body that is not JSON, a refused
login, a reply cut short, partial bulk failures, and a mailq whose message
leaves between the page and its detail; and mtactl against a stopped
daemon whose queue directory holds a FIFO and a corrupt file.

A small HTTP server on the configured ui_port plays mtad's API (canned
replies per method and path); nothing else runs, so nothing is delivered.
"""
import http.server
import json
import os
import re
import subprocess
import threading

import pytest

from conftest import BIN_DIR

MTACTL = os.path.join(BIN_DIR, "mtactl")
QID = "0123456789ABCDEF"


class FakeApi:
    """replies[(method, path-without-query)] = (status, body bytes or str or JSON-able),
    or a function of the whole path (query included) that returns that pair."""

    def __init__(self, port):
        self.replies = {}
        self.seen = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def _answer(self):
                path = self.path.split("?", 1)[0]
                api.seen.append((self.command, self.path))
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                reply = api.replies.get((self.command, path), (404, {"error": "no"}))
                status, body = reply(self.path) if callable(reply) else reply
                if not isinstance(body, (bytes, str)):
                    body = json.dumps(body)
                if isinstance(body, str):
                    body = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def api(mtad_factory):
    """(m, FakeApi): mtad's configuration (not started), its API played by FakeApi."""
    m = mtad_factory(conf={"ssl_disabled": "yes"}, start=False)
    fake = FakeApi(m.ui_port)
    yield m, fake
    fake.stop()


def ctl(m, *args):
    return subprocess.run([MTACTL, "-c", m.conf_path, *args], env=m.env, capture_output=True,
                          text=True, timeout=60)


ROWS = [
    # (args, replies, exit status, stdout (regex, or None), stderr (regex))
    (["queue"], {("GET", "/api/queue"): (500, {"error": "boom"})}, 5, None,
     r"^mtactl: GET /api/queue\?offset=0&limit=500&order=asc: HTTP 500: boom$"),
    (["queue"], {("GET", "/api/queue"): (200, "not json")}, 5, None,
     r"^mtactl: GET /api/queue\?offset=0&limit=500&order=asc: HTTP 200: bad reply$"),
    (["queue"], {("GET", "/api/queue"): (401, {"error": "bad credentials"})}, 4, None,
     r"^mtactl: mtad refused the request \(401: bad credentials\): check username and "
     r"password in .*mtad\.conf$"),
    (["qshape"], {("GET", "/api/qshape"): (503, "down")}, 5, None,
     r"^mtactl: GET /api/qshape: HTTP 503: bad reply$"),
    (["stats"], {("GET", "/api/stats"): (500, {"error": "no stats"})}, 5, None,
     r"^mtactl: GET /api/stats: HTTP 500: no stats$"),
    (["show", QID.lower()], {("GET", "/api/queue/" + QID): (500, {"error": "disk on fire"})},
     5, None, r"^mtactl: GET /api/queue/%s: HTTP 500: disk on fire$" % QID),
    (["show", QID], {("GET", "/api/queue/" + QID): (200, [1, 2])}, 5, None,
     r"^mtactl: GET /api/queue/%s: HTTP 200: bad reply$" % QID),
    (["show", QID], {("GET", "/api/queue/" + QID): (404, {"error": "gone"})}, 2, None,
     r"^mtactl: %s: no such message$" % QID),
    (["hold", QID], {("POST", "/api/queue/%s/hold" % QID): (409, {"error": "being delivered"})},
     5, None, r"^mtactl: %s: being delivered$" % QID),
    (["release", QID], {("POST", "/api/queue/%s/release" % QID): (500, "")}, 5, None,
     r"^mtactl: %s: release: HTTP 500: failed$" % QID),
    (["delete", QID], {("POST", "/api/queue/%s/delete" % QID): (200, {"changed": False})}, 0,
     r"^%s: not deleted$" % QID, r"^$"),
    (["hold", "ALL"], {("POST", "/api/queue/hold"): (500, {"error": "busy"})}, 5, None,
     r"^mtactl: hold: HTTP 500: busy$"),
    (["delete", "ALL"], {("POST", "/api/queue/delete"): (200, {"changed": 1, "failed": 2})}, 5,
     r"^mtactl: Deleted: 1 message$",
     r"^mtactl: delete: 2 messages could not be changed \(see mtad's log\)$"),
    (["flush"], {("POST", "/api/queue/retry"): (200, {})}, 0,
     r"^mtactl: every deferred message is being retried now$", r"^$"),
    (["hold", QID, "ALL"], {}, 1, None, r"^mtactl: hold: ALL stands alone$"),
    (["delete"], {}, 1, None,
     r"^mtactl: delete: give queue IDs, ALL or a filter \(--domain, --state, \.\.\.\)$"),
    (["health"], {("GET", "/healthz"): (503, {"status": "disk full"})}, 5, None,
     r"^mtactl: GET /healthz: HTTP 503$"),
    (["health"], {("GET", "/healthz"): (200, {"status": "ok"})}, 0, r"^ok$", r"^$"),
    (["drain"], {("POST", "/api/drain"): (409, {"error": "already draining"})}, 5, None,
     r"^mtactl: POST /api/drain: HTTP 409: already draining$"),
    (["drain"], {("POST", "/api/drain"): (202, {})}, 0,
     r"^mtad is draining: delivering for up to \d+s \(no drain_relay: what is left then "
     r"stays in data_dir\); it exits when done$", r"^$"),
]


@pytest.mark.parametrize("args,replies,status,out,err", ROWS,
                         ids=["%d-%s" % (i, "-".join(r[0])) for i, r in enumerate(ROWS)])
def test_api_errors(api, args, replies, status, out, err):
    m, fake = api
    fake.replies = replies
    p = ctl(m, *args)
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    assert re.search(err, p.stderr.rstrip("\n"), re.S), p.stderr
    if out is not None:
        assert re.search(out, p.stdout.rstrip("\n")), p.stdout


def _row(qid, nrcpt, state="deferred"):
    return {"id": qid, "arrival": 1700000000, "size": 300, "sender": "a@example.org",
            "state": state, "nrcpt": nrcpt, "pending": nrcpt,
            "recipients": ["r%d@example.net" % i for i in range(min(nrcpt, 3))],
            "last_reply": "451 4.3.0 try later"}


def test_queue_detail_gone_or_failing(api):
    """A page row that needs its detail: a 404 (delivered meanwhile) drops it; any
    other failure prints the row as it stands."""
    m, fake = api
    a, b, c = "000000000000000A", "000000000000000B", "000000000000000C"
    fake.replies = {
        ("GET", "/api/queue"): (200, {"items": [_row(a, 5), _row(b, 2), _row(c, 1)]}),
        ("GET", "/api/queue/" + a): (404, {"error": "gone"}),
        ("GET", "/api/queue/" + b): (500, {"error": "oops"}),
    }
    p = ctl(m, "queue")
    assert p.returncode == 0, p.stderr
    ids = re.findall(r"^([0-9A-F]{16})[ !]", p.stdout, re.M)
    assert ids == [b, c], p.stdout
    assert p.stdout.rstrip("\n").endswith("in 2 Requests."), p.stdout
    # the row's own view of b: its listed recipients with the row's reply
    assert "(451 4.3.0 try later)" in p.stdout
    assert ("GET", "/api/queue/" + c) not in fake.seen      # exact row: no detail asked


def test_stopped_queue_odd_files(mtad_factory):
    """mtad stopped: a FIFO and a corrupt file named like queue ids are reported and
    skipped by queue and stats, and named by show; the good message is listed."""
    m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:1"})
    import smtplib
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=30) as s:
        s.sendmail("alice@example.org", ["bob@example.net"],
                   "From: alice@example.org\r\nSubject: one\r\n\r\nhello\r\n")
    m.stop()
    qdir = os.path.join(m.data_dir, "queue")
    good = [n for n in os.listdir(qdir) if os.path.getsize(os.path.join(qdir, n)) > 0]
    assert len(good) == 1
    fifo, bad = "0000000000000ABC", "00000000000000FF"
    os.mkfifo(os.path.join(qdir, fifo))
    with open(os.path.join(qdir, bad), "wb") as f:
        f.write(b"this is not a queue file\n" * 10)
    p = ctl(m, "queue")
    assert p.returncode == 0, p.stderr
    assert re.findall(r"^([0-9A-F]{16})[ !]", p.stdout, re.M) == good
    assert "queue/%s: not a regular file; skipped" % fifo in p.stderr
    assert re.search(r"queue/%s: corrupt queue file \(.+\); skipped" % bad, p.stderr), p.stderr
    p = ctl(m, "stats")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^Mqueue-Messages:\s+1$", p.stdout, re.M), p.stdout
    p = ctl(m, "show", bad)
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert re.search(r"mtad is not running and .*queue/%s: corrupt queue file \(.+\)" % bad,
                     p.stderr), p.stderr
    p = ctl(m, "show", fifo)
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert "queue/%s: not a regular file" % fifo in p.stderr
    p = ctl(m, "show", "notHexButValid1")
    assert p.returncode == 2 and "no such message" in p.stderr
    os.unlink(os.path.join(qdir, fifo))
    os.unlink(os.path.join(qdir, bad))
