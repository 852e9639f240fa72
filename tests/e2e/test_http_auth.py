"""Basic auth, the delay after failed logins and the cross-site request guard."""
import base64
import socket
import threading
import time

import pytest

from conftest import wait_until
from http_helpers import QUEUED_CONF, Api, send_mail, wait_queue_total

USER, PASSWORD = "admin", "correct horse:battery"


@pytest.fixture
def authed(mtad_factory):
    conf = dict(QUEUED_CONF)
    conf.update({"username": USER, "password": '"%s"' % PASSWORD})
    m = mtad_factory(conf=conf)
    return m, Api(m, USER, PASSWORD)


def test_auth_required_everywhere_but_healthz(authed):
    m, api = authed
    anon = Api(m)
    for path in ("/", "/index.html", "/assets/app.js", "/api/stats", "/api/queue",
                 "/api/history", "/metrics", "/api/queue/0000000000000000", "/no/such/path"):
        r = anon.get(path)
        assert r.status == 401, path
        assert r.header("WWW-Authenticate") == 'Basic realm="mtad", charset="UTF-8"', path
        # The 401 is not the page: nothing of the dashboard leaks.
        assert b"uplot" not in r.body.lower()
    assert anon.post("/api/queue/retry").status == 401
    assert anon.get("/healthz").status == 200
    for path in ("/", "/api/stats", "/metrics", "/assets/app.js"):
        assert api.get(path).status == 200, path
    # Unknown paths are 404 only once authenticated.
    assert api.get("/no/such/path").status == 404


def test_wrong_credentials_are_delayed(authed):
    m, api = authed
    cases = [("admin", "Zq9-not-it"), ("Admin", PASSWORD), ("admin", PASSWORD + "x"),
             ("admin", PASSWORD[:-1]), ("", "")]
    for user, pw in cases:
        t0 = time.monotonic()
        r = Api(m, user, pw).get("/api/stats")
        took = time.monotonic() - t0
        assert r.status == 401, (user, pw)
        assert took >= 0.9, "answered after %.2fs for %r" % (took, (user, pw))
    # Missing or malformed credentials are answered at once (a browser's first
    # request has none), and are not logins that could match.
    for hdr in (None, "Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()):
        t0 = time.monotonic()
        r = api.get("/api/stats", headers={"Authorization": hdr})
        assert r.status == 401
        assert time.monotonic() - t0 < 0.5, hdr
    # Failures are logged with the client, never with the password.
    err = m.read_stderr()
    assert "127.0.0.1: authentication failed" in err
    assert "Zq9-not-it" not in err and PASSWORD not in err


def test_delay_grows_per_client_and_success_resets(authed):
    m, api = authed
    bad = Api(m, USER, "nope")
    delays = []
    for _ in range(5):
        t0 = time.monotonic()
        assert bad.get("/healthz").status == 200        # open: no effect
        assert bad.get("/api/stats", timeout=30).status == 401
        delays.append(time.monotonic() - t0)
    assert delays[3] >= 1.9 and delays[4] >= 3.9, delays
    assert api.get("/api/stats").status == 200            # success forgets the failures
    t0 = time.monotonic()
    assert bad.get("/api/stats").status == 401
    assert 0.9 <= time.monotonic() - t0 < 1.9


def test_delay_does_not_block_the_server(authed):
    m, api = authed
    results = {}

    def slow():
        t0 = time.monotonic()
        results["status"] = Api(m, USER, "bad").get("/api/stats").status
        results["took"] = time.monotonic() - t0
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    # While the failed login waits for its answer, others are served at once.
    for _ in range(5):
        t0 = time.monotonic()
        assert api.get("/api/stats").status == 200
        assert time.monotonic() - t0 < 0.5
    send_mail(m)
    t.join(10)
    assert results["status"] == 401 and results["took"] >= 0.9, results


def test_client_gone_while_delayed(authed):
    m, api = authed
    # Send a bad login and hang up before the delayed answer: nothing breaks.
    hdr = "Basic " + base64.b64encode(b"admin:bad").decode()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", m.ui_port), timeout=5) as s:
            s.sendall(("GET /api/stats HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % hdr).encode())
    time.sleep(2.5)
    assert api.get("/api/stats").status == 200


def test_stop_with_delayed_replies_pending(authed):
    m, api = authed
    hdr = "Basic " + base64.b64encode(b"admin:bad").decode()
    socks = []
    try:
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", m.ui_port), timeout=5)
            s.sendall(("GET /api/stats HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % hdr).encode())
            socks.append(s)
        time.sleep(0.2)
        assert m.stop() == 0           # the fixture also checks for sanitizer reports
    finally:
        for s in socks:
            s.close()


# ---- cross-site requests ------------------------------------------------------------

def test_csrf_guard(authed):
    m, api = authed
    send_mail(m)
    qid = wait_queue_total(api, 1)["items"][0]["id"]
    host = "127.0.0.1:%d" % m.ui_port
    path = "/api/queue/%s/hold" % qid
    # No X-Requested-With: what a cross-site <form> would send.
    r = api.post(path, csrf=False)
    assert r.status == 403 and "X-Requested-With" in r.json()["error"]
    r = api.post(path, csrf=False, raw_body=b"all=1",
                 headers={"Content-Type": "application/x-www-form-urlencoded",
                          "Origin": "http://evil.example"})
    assert r.status == 403
    r = api.delete("/api/queue/" + qid, csrf=False)
    assert r.status == 403
    # With the header but from another origin (or a look-alike).
    for origin in ("http://evil.example", "null", "http://%s.evil.example" % host,
                   "https://" + host, "http://127.0.0.1:1"):
        r = api.post(path, headers={"Origin": origin})
        assert r.status == 403, origin
    r = api.post(path, headers={"Referer": "http://evil.example/page"})
    assert r.status == 403
    assert api.json("/api/queue/" + qid)["held"] is False
    # Same origin, or no Origin/Referer at all (curl, mtactl): allowed.
    r = api.post(path, headers={"Origin": "http://" + host, "Referer": "http://%s/" % host})
    assert r.status == 200 and r.json()["changed"] is True
    r = api.post("/api/queue/%s/release" % qid)
    assert r.status == 200
    assert "refused cross-site request" in m.read_stderr()


def test_csrf_applies_without_auth(mtad_factory):
    m = mtad_factory(conf=dict(QUEUED_CONF))
    api = Api(m)
    send_mail(m)
    qid = wait_queue_total(api, 1)["items"][0]["id"]
    assert api.delete("/api/queue/" + qid, csrf=False).status == 403
    assert api.delete("/api/queue/" + qid, headers={"Origin": "http://evil.example"}).status == 403
    assert api.get("/api/queue/" + qid).status == 200
    assert api.delete("/api/queue/" + qid).status == 200
    wait_until(lambda: api.get("/api/queue/" + qid).status == 404, 10, what="deletion")


def test_no_cors(authed):
    m, api = authed
    r = api.request("OPTIONS", "/api/queue/retry",
                    headers={"Origin": "http://evil.example",
                             "Access-Control-Request-Method": "POST",
                             "Access-Control-Request-Headers": "x-requested-with"})
    assert r.header("Access-Control-Allow-Origin") is None
    assert r.header("Access-Control-Allow-Headers") is None
    assert r.status in (401, 405)
    r = api.get("/api/stats", headers={"Origin": "http://evil.example"})
    assert r.header("Access-Control-Allow-Origin") is None
