"""Basic auth, the lockout after failed logins, Host names and the cross-site request guard."""
import base64
import http.client
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


def raw_get(m, path, auth=None, source="127.0.0.1", host=None):
    """GET from a chosen loopback source address: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", m.ui_port, timeout=15,
                                      source_address=(source, 0))
    h = {}
    if auth is not None:
        h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode()
    if host is not None:
        h["Host"] = host
    try:
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def test_wrong_credentials_are_refused_and_logged(authed):
    m, api = authed
    cases = [("admin", "Zq9-not-it"), ("Admin", PASSWORD), ("admin", PASSWORD + "x"),
             ("admin", PASSWORD[:-1]), ("", "")]
    for user, pw in cases:
        r = Api(m, user, pw).get("/api/stats")
        assert r.status == 401, (user, pw)
        assert r.header("WWW-Authenticate") == 'Basic realm="mtad", charset="UTF-8"'
    # Missing or malformed credentials (a browser's first request has none)
    # are not logins that could match: they never count towards the lockout.
    for _ in range(3):
        for hdr in (None, "Bearer abc", "Basic !!!",
                    "Basic " + base64.b64encode(b"nocolon").decode()):
            assert api.get("/api/stats", headers={"Authorization": hdr}).status == 401
    assert api.get("/api/stats").status == 200
    # Failures are logged with the client, never with the password.
    wait_until(lambda: "127.0.0.1: authentication failed" in m.read_stderr(), 5,
               what="the failure in the log")
    err = m.read_stderr()
    assert "Zq9-not-it" not in err and PASSWORD not in err


def test_ten_failures_lock_the_address_out(authed):
    m, api = authed
    for i in range(10):
        status, _, _ = raw_get(m, "/api/stats", auth=(USER, "guess-%d" % i))
        assert status == 401, i
    # SPEC §11.1: every request from that address gets 429, the right password included.
    status, headers, body = raw_get(m, "/api/stats", auth=(USER, PASSWORD))
    assert status == 429, body
    retry = int(headers["Retry-After"])
    assert 0 < retry <= 600, retry
    assert b"PASSWORD" not in body and PASSWORD.encode() not in body
    assert raw_get(m, "/", auth=(USER, PASSWORD))[0] == 429
    assert raw_get(m, "/api/stats")[0] == 429                 # no credentials: the same
    # Health checks stay open (an orchestrator probing through the same address).
    assert raw_get(m, "/healthz")[0] == 200
    assert raw_get(m, "/readyz")[0] == 200
    # Another address is not affected.
    assert raw_get(m, "/api/stats", auth=(USER, PASSWORD), source="127.0.0.2")[0] == 200
    assert raw_get(m, "/api/stats", auth=(USER, "nope"), source="127.0.0.2")[0] == 401
    # The log: the lockout once, and failure lines at most one a second with a count.
    wait_until(lambda: "every request from it refused (429)" in m.read_stderr(), 5,
               what="the lockout in the log")
    err = m.read_stderr()
    lines = [l for l in err.splitlines() if "127.0.0.1: authentication failed" in l]
    assert 1 <= len(lines) <= 3, lines
    assert "127.0.0.1: authentication failed 10 times in 10 minutes" in err


def test_parallel_guessers_are_stopped(authed):
    """The attack of issue 9 again: many impatient guessers on one address."""
    m, api = authed
    results = {"401": 0, "429": 0, "closed": 0, "other": 0}
    lock = threading.Lock()
    first_429 = []
    t0 = time.monotonic()
    stop = time.monotonic() + 3

    def guess(n):
        i = 0
        while time.monotonic() < stop:
            i += 1
            try:
                status = raw_get(m, "/api/stats", auth=(USER, "g%d-%d" % (n, i)))[0]
            except OSError:
                status = 0      # closed at once: over 32 connections from one address
            with lock:
                key = str(status) if status in (401, 429) else "closed" if status == 0 else "other"
                results[key] += 1
                if status == 429 and not first_429:
                    first_429.append(time.monotonic() - t0)
    threads = [threading.Thread(target=guess, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Ten guesses were checked; every other one was refused unchecked (429),
    # or its connection closed at once (more than 32 from the address).
    assert results["401"] == 10, results
    assert results["429"] > 0 and results["other"] == 0, results
    assert raw_get(m, "/api/stats", auth=(USER, PASSWORD))[0] == 429
    print("guessers: %d checked (401) in %.3f s before the lockout; then %d refused (429) "
          "and %d connections closed at once in 3 s"
          % (results["401"], first_429[0], results["429"], results["closed"]))


def test_success_does_not_reset_the_count(authed):
    m, api = authed
    for i in range(9):
        assert raw_get(m, "/api/stats", auth=(USER, "bad%d" % i))[0] == 401
    assert raw_get(m, "/api/stats", auth=(USER, PASSWORD))[0] == 200
    assert raw_get(m, "/api/stats", auth=(USER, "bad9"))[0] == 401
    assert raw_get(m, "/api/stats", auth=(USER, PASSWORD))[0] == 429


def test_no_lockout_without_auth(mtad_factory):
    m = mtad_factory()
    for i in range(12):
        assert raw_get(m, "/api/stats", auth=(USER, "x%d" % i))[0] == 200


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


# ---- Host names (DNS rebinding, SPEC §11.1 ui_hosts) ----------------------------------

def test_unknown_host_gets_421(mtad_factory):
    m = mtad_factory(conf={"ui_hosts": "ui.example.net, mta-ui.example.org"})
    api = Api(m)
    port = m.ui_port
    good = ["127.0.0.1", "127.0.0.1:%d" % port, "localhost", "LOCALHOST:%d" % port,
            "mx.test.example", "mx.test.example.:%d" % port, "[::1]:%d" % port,
            "ui.example.net", "UI.example.net:%d" % port, "mta-ui.example.org:8443", "10.1.2.3"]
    for host in good:
        r = api.get("/api/stats", headers={"Host": host})
        assert r.status == 200, (host, r)
    bad = ["evil.example", "evil.example:%d" % port, "mx.test.example.evil.example",
           "ui.example.net.evil.example", "127.0.0.1.evil.example", "[::1", "x:y", ""]
    for host in bad:
        r = api.get("/api/stats", headers={"Host": host})
        assert r.status == 421, (host, r)
        assert b'"queue"' not in r.body
    # The dashboard and the actions too; health checks as well (an orchestrator
    # probes by IP address, which is always allowed).
    assert api.get("/", headers={"Host": "evil.example"}).status == 421
    assert api.get("/healthz", headers={"Host": "evil.example"}).status == 421
    assert api.get("/healthz", headers={"Host": "10.0.0.7:%d" % port}).status == 200


def test_rebinding_page_cannot_act(mtad_factory):
    # A page of evil.example whose name now resolves to the UI: its requests
    # name evil.example in Host and Origin, which used to pass the origin check.
    m = mtad_factory(conf=dict(QUEUED_CONF))
    api = Api(m)
    send_mail(m)
    qid = wait_queue_total(api, 1)["items"][0]["id"]
    evil = "evil.example:%d" % m.ui_port
    r = api.delete("/api/queue/" + qid, headers={"Host": evil, "Origin": "http://" + evil})
    assert r.status == 421, r
    r = api.get("/api/queue/" + qid, headers={"Host": evil})
    assert r.status == 421, r
    assert api.get("/api/queue/" + qid).status == 200
    # Origin is compared with our names (hostname here), not with Host.
    ours = "127.0.0.1:%d" % m.ui_port
    r = api.post("/api/queue/%s/hold" % qid,
                 headers={"Host": ours, "Origin": "http://evil.example:%d" % m.ui_port})
    assert r.status == 403, r
    r = api.post("/api/queue/%s/hold" % qid,
                 headers={"Host": ours, "Origin": "http://mx.test.example:%d" % m.ui_port})
    assert r.status == 200, r
