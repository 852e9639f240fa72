"""The dashboard in a real browser: Debian's Chromium, headless, driven by
playwright-core (tests/browser/). Loads the page with credentials, finds a
queued message (with a hostile From: and Subject:), opens it, deletes it
with confirmation, checks the graphs render and the narrow layout; the
screenshots are kept in build/artifacts/.

Needs /usr/bin/chromium (.ci/deps.sh installs it) and node with npm; the
test runs `npm ci` in tests/browser/ when node_modules is missing.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, wait_until
from http_helpers import QUEUED_CONF, Api, send_mail, wait_queue_total

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
ARTIFACTS = os.path.join(ROOT, "build", "artifacts")
CHROMIUM = "/usr/bin/chromium"

HOSTILE_FROM = '"<img src=x onerror=window.__xss=1>" <evil@example.com>'
HOSTILE_SUBJECT = "<script>window.__xss=1</script> & <b>bold</b>"


def browser_ready():
    """None when the browser toolkit is usable, else the reason to skip."""
    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed (run .ci/deps.sh)"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are needed to drive the browser"
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            return "npm ci in tests/browser failed: " + p.stderr[-500:]
    return None


def run_browser(opts, timeout=150):
    """Run tests/browser/dashboard.mjs with opts; returns its JSON report."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    opts = dict(opts, artifacts=ARTIFACTS, chromium=CHROMIUM)
    p = subprocess.run(["node", os.path.join(BROWSER_DIR, "dashboard.mjs"), json.dumps(opts)],
                       cwd=BROWSER_DIR, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "no report from the browser driver: rc=%s\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    report = json.loads(lines[-1])
    assert p.returncode == 0 and "error" not in report, report.get("error") or report
    return report


@pytest.fixture(scope="module")
def browser():
    why = browser_ready()
    if why:
        pytest.skip(why)


def test_dashboard_in_chromium(browser, mtad_factory):
    conf = dict(QUEUED_CONF)
    conf.update({"username": "operator", "password": "browser-pass"})
    m = mtad_factory(conf=conf)
    api = Api(m, "operator", "browser-pass")
    send_mail(m, sender="keep@example.com", rcpts=["one@example.org"], subject="stays")
    send_mail(m, sender="evil@example.com", rcpts=["victim@example.org"],
              from_header=HOSTILE_FROM, subject=HOSTILE_SUBJECT)
    items = wait_queue_total(api, 2)["items"]
    qid = [x["id"] for x in items if x["sender"] == "evil@example.com"][0]
    # its first (deferred) attempt is in the file's history before the page opens it
    first = wait_until(lambda: (lambda h: h[0] if h else None)(
        api.json("/api/queue/" + qid)["history"]), 20, what="a recorded attempt")

    r = run_browser({"mode": "flow", "url": "http://127.0.0.1:%d/" % m.ui_port,
                     "user": "operator", "password": "browser-pass", "qid": qid})
    assert r["status"] == 200
    assert r["hostname"] == "mx.test.example"
    assert r["rows"] == 2
    assert len(r["charts"]) == 3
    assert r["legend"][:5] == ["Accepted", "Delivered", "Deferred", "Bounced", "Rejected"] or \
        "Accepted" in r["legend"], r["legend"]
    # The hostile text is shown literally and created no element.
    assert r["detailSubject"] == HOSTILE_SUBJECT
    assert "From: " + HOSTILE_FROM in r["detailHeaders"]
    # The delivery history: the attempt, its result and the reply, as text.
    assert "victim@example.org #1" in r["detailHistory"], r["detailHistory"]
    assert "deferred" in r["detailHistory"] and first["reply"] in r["detailHistory"], \
        (first, r["detailHistory"])
    assert r["injected"] == {"xss": False, "scripts": 2, "imgs": 0}
    # Confirmation: cancel kept the dialog, confirm deleted.
    assert qid in r["confirmText"] and r["stillOpenAfterCancel"] is True
    assert r["deleted"] is True and "Delete" in r["toast"]
    # The page broke no rule of its own Content-Security-Policy and logged no error.
    assert r["cspViolations"] == [], r["cspViolations"]
    assert r["consoleErrors"] == [], r["consoleErrors"]
    assert r["narrowOverflow"] <= 1, "sideways scrolling on a 390 px screen"
    for path in r["screenshots"]:
        assert os.path.getsize(path) > 5000, path
    # The server agrees: the message is gone, the other one stays.
    assert api.get("/api/queue/" + qid).status == 404
    assert [x["sender"] for x in api.json("/api/queue")["items"]] == ["keep@example.com"]


def test_dashboard_without_credentials_is_refused(browser, mtad_factory):
    conf = {"username": "operator", "password": "browser-pass"}
    m = mtad_factory(conf=conf)
    os.makedirs(ARTIFACTS, exist_ok=True)
    opts = {"mode": "banner", "url": "http://127.0.0.1:%d/" % m.ui_port,
            "artifacts": ARTIFACTS, "chromium": CHROMIUM}
    p = subprocess.run(["node", os.path.join(BROWSER_DIR, "dashboard.mjs"), json.dumps(opts)],
                       cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
    report = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
    # Headless Chromium shows no login prompt: the 401 ends the navigation.
    assert report.get("status") == 401 or "ERR_INVALID_AUTH_CREDENTIALS" in report.get("error", ""), report
    assert p.returncode != 0


def test_dashboard_with_credentials_in_the_url(browser, mtad_factory):
    # Chromium refuses fetch() of a URL built on a page URL with user:pass@.
    conf = dict(QUEUED_CONF)
    conf.update({"username": "operator", "password": "browser-pass"})
    m = mtad_factory(conf=conf)
    api = Api(m, "operator", "browser-pass")
    send_mail(m)
    wait_queue_total(api, 1)
    r = run_browser({"mode": "live",
                     "url": "http://operator:browser-pass@127.0.0.1:%d/" % m.ui_port})
    assert r["status"] == 200
    assert r["hostname"] == "mx.test.example"
    assert r["queueCount"] == "1"
    assert r["consoleErrors"] == [], r["consoleErrors"]
    # Counts get whole-number ticks; the cards say what they count.
    for chart, ticks in r["ticks"].items():
        assert ticks and all(float(v).is_integer() for v in ticks), (chart, ticks)
    assert "Deferred attempts" in r["cards"], r["cards"]
    assert "Throttled destinations" in r["cards"], r["cards"]
    # With credentials set there is no open-UI banner.
    assert [b["id"] for b in r["banners"]] == [], r["banners"]


def test_open_ui_banner(browser, mtad_factory):
    # SPEC §11.1: no username and an address beyond loopback. The UI binds
    # every address here; the test talks to it over loopback only.
    m = mtad_factory(conf={"ui_address": "0.0.0.0"})
    assert Api(m).json("/api/stats")["ui"] == {"open": True}
    r = run_browser({"mode": "live", "url": "http://127.0.0.1:%d/" % m.ui_port})
    banners = {b["id"]: b["text"] for b in r["banners"]}
    assert "anyone who can reach this port can read and change the queue" in \
        banners.get("open-ui-banner", ""), r["banners"]
    assert "the web UI on 0.0.0.0 port %d has no username and password" % m.ui_port \
        in m.read_stderr()
