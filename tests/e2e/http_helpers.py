"""Helpers for the HTTP/API tests: a small client and mail submission.

Used by test_http_*.py, test_disk_guard.py and test_ui_browser.py. Mail
stays queued when mtad relays to [127.0.0.1]:1 (nothing listens there: every
attempt is deferred), which QUEUED_CONF sets.
"""
import base64
import http.client
import json
import smtplib
import socket
from email import policy
from email.message import EmailMessage

from conftest import port_open, wait_until

QUEUED_CONF = {"smart_relay": "[127.0.0.1]:1"}


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Resp %d %r>" % (self.status, self.body[:200])


class Api:
    """HTTP client for one mtad: basic auth when given, the CSRF header on writes."""

    def __init__(self, m, user=None, password=None, host="127.0.0.1"):
        self.host = host
        self.port = m.ui_port
        self.user = user
        self.password = password
        # The harness waits for the SMTP port; the UI port is bound just after it.
        if getattr(m, "proc", None) is not None and m.proc.poll() is None:
            wait_until(lambda: port_open(host, self.port), 10, what="the UI port")

    def auth_header(self, user=None, password=None):
        user = self.user if user is None else user
        password = self.password if password is None else password
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        return "Basic " + token

    def request(self, method, path, body=None, headers=None, auth=True, csrf=True,
                timeout=15, raw_body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = {}
        if auth and self.user is not None:
            h["Authorization"] = self.auth_header()
        if csrf and method not in ("GET", "HEAD"):
            h["X-Requested-With"] = "pytest"
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if headers:
            for k, v in headers.items():
                if v is None:
                    h.pop(k, None)
                else:
                    h[k] = v
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def json(self, path):
        r = self.get(path)
        assert r.status == 200, "GET %s: %r" % (path, r)
        assert r.header("Content-Type").startswith("application/json"), r.header("Content-Type")
        return r.json()


def make_message(sender, rcpts, subject="test", from_header=None, body="hello\n", extra=None):
    msg = EmailMessage()
    msg["From"] = from_header if from_header is not None else sender
    msg["To"] = ", ".join(rcpts)
    msg["Subject"] = subject
    for k, v in (extra or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg


def send_mail(m, sender="alice@example.com", rcpts=("bob@example.org",), subject="test",
              from_header=None, body="hello\n", raw=None):
    """Submit one message over SMTP; returns nothing, raises on refusal."""
    rcpts = list(rcpts)
    data = raw if raw is not None else make_message(sender, rcpts, subject, from_header, body).as_bytes(policy=policy.SMTP)
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        s.sendmail(sender, rcpts, data)


def wait_queue_total(api, n, timeout=20, query=""):
    """Wait until /api/queue lists at least n messages; returns the listing."""
    return wait_until(lambda: (lambda j: j if j["total"] >= n else None)(
        api.json("/api/queue?per_page=500" + query)), timeout, what="%d queued message(s)" % n)


def raw_http(port, data, timeout=10, read_until_close=True):
    """Send raw bytes, return everything read until the server closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not read_until_close:
                break
        return out
