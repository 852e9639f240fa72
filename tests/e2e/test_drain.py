"""Drain (SPEC §11.4): SIGTERM with drain_relay, and `mtactl drain`.

mtad stops accepting at once (listeners closed), keeps delivering for up to
drain_timeout, then hands every message still queued to drain_relay and
deletes each only after that relay's 250. What the relay refuses stays in
data_dir (exit status 75, a log line); an empty queue exits 0.
"""
import os
import signal
import smtplib
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import BIN_DIR, wait_until, port_open
from nexthop import NextHop

DEADLINE = 20


def send(m, tag, rcpt="bob@dst.test"):
    msg = ("From: <alice@src.test>\r\nTo: <%s>\r\nSubject: %s\r\nX-Test-Id: %s\r\n\r\nHi.\r\n"
           % (rcpt, tag, tag)).encode()
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
        s.sendmail("alice@src.test", [rcpt], msg)


def tags(msgs):
    out = []
    for x in msgs:
        for line in x.data.split(b"\r\n"):
            if line.startswith(b"X-Test-Id: "):
                out.append(line[11:].decode())
    return sorted(out)


def http_get(m, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s%s" % (m.conf["ui_port"], path),
                                    timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def readyz(m):
    return http_get(m, "/readyz")


def wait_exit(m, timeout=DEADLINE):
    try:
        return m.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("mtad did not exit within %ss: %s" % (timeout, m.read_stderr()[-3000:]))


@pytest.fixture
def hops():
    made = []

    def make():
        h = NextHop("127.0.0.1").start()
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop()


def drain_conf(down, relay, timeout="5s"):
    return {"smart_relay": "[127.0.0.1]:%d" % down.port,
            "drain_relay": "[127.0.0.1]:%d" % relay.port if relay else "",
            "drain_timeout": timeout,
            "retry_min_backoff": "1h", "retry_max_backoff": "2h",
            "smtp_connect_timeout": "3s"}


def test_sigterm_hands_deferred_mail_to_drain_relay(mtad_factory, hops):
    down, relay = hops(), hops()
    down.tempfail("RCPT", reply="451 4.3.0 Not now")
    m = mtad_factory(drain_conf(down, relay, timeout="30s"))
    for i in range(5):
        send(m, "d%d" % i, rcpt="bob%d@dst.test" % i)
    wait_until(lambda: m.maillog().count("status=deferred") >= 5, DEADLINE,
               what="five deferrals")
    assert len(m.queue_files()) == 5
    t0 = time.monotonic()
    m.proc.send_signal(signal.SIGTERM)
    rc = wait_exit(m)
    took = time.monotonic() - t0
    assert rc == 0, m.read_stderr()[-3000:]
    # everything deferred and nothing in flight: no need to wait for drain_timeout
    assert took < 15, took
    assert tags(relay.messages) == ["d0", "d1", "d2", "d3", "d4"], "each exactly once"
    assert sorted(r for x in relay.messages for r in x.rcpts) == \
        ["bob%d@dst.test" % i for i in range(5)]
    assert all(x.sender == "alice@src.test" for x in relay.messages)
    assert m.queue_files() == [], "nothing left on the volume"
    log = m.maillog()
    assert log.count("relay=127.0.0.1[127.0.0.1]:%d" % relay.port) == 5, log
    assert "status=bounced" not in log
    err = m.read_stderr()
    assert "drain: handing 5 message(s) over to 127.0.0.1:%d" % relay.port in err, err
    assert "drain: 5 message(s) handed over" in err, err


def test_drain_closes_listeners_and_finishes_running_delivery(mtad_factory, hops):
    slow, relay = hops(), hops()
    slow.hang_seconds = 2
    slow.hang_at("DATAEND", times=1)
    m = mtad_factory(drain_conf(slow, relay, timeout="30s"))
    wait_until(lambda: readyz(m) == 200, DEADLINE, what="/readyz 200")
    send(m, "slow1")
    wait_until(lambda: any("DATA" in c for _, c in slow.commands), DEADLINE,
               what="the delivery to be under way")
    m.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: not port_open("127.0.0.1", m.smtp_port), DEADLINE,
               what="the SMTP listener to close")
    assert m.proc.poll() is None, "still draining while the delivery runs"
    # the UI stays up while draining: not ready (503), still alive (200)
    assert readyz(m) == 503
    assert http_get(m, "/healthz") == 200
    rc = wait_exit(m)
    assert rc == 0, m.read_stderr()[-3000:]
    # the running delivery got its reply (the hang ends with a reply or a drop):
    # either the slow hop took it, or it was handed over - never both, never neither
    got = tags(slow.messages) + tags(relay.messages)
    assert got == ["slow1"], got
    assert m.queue_files() == []


def test_what_drain_relay_refuses_stays_and_is_reported(mtad_factory, hops):
    down, relay = hops(), hops()
    down.tempfail("RCPT", reply="451 4.3.0 Not now")
    relay.tempfail("RCPT", rcpt="t0@dst.test", reply="451 4.7.1 Try later")
    relay.permfail("RCPT", rcpt="p0@dst.test", reply="550 5.7.1 Relay access denied")
    m = mtad_factory(drain_conf(down, relay))
    for r in ("t0", "p0", "ok0"):
        send(m, r, rcpt="%s@dst.test" % r)
    wait_until(lambda: m.maillog().count("status=deferred") >= 3, DEADLINE,
               what="three deferrals")
    m.proc.send_signal(signal.SIGTERM)
    rc = wait_exit(m)
    assert rc == 75, (rc, m.read_stderr()[-3000:])
    assert tags(relay.messages) == ["ok0"]
    assert len(m.queue_files()) == 2, "refused hand-overs stay on the volume"
    err = m.read_stderr()
    assert "drain: 2 message(s) stay in the queue" in err, err
    log = m.maillog()
    assert "status=bounced" not in log, "a refusal during the hand-over never bounces"
    assert not any(x.sender == "" for x in down.messages + relay.messages), "no DSN"
    # nothing lost: the next start on the same volume delivers them
    down.reset()
    m.conf["smart_relay"] = "[127.0.0.1]:%d" % down.port
    m.write_conf()
    m.start()
    # their next try is an hour away (retry_min_backoff): ask for it now
    p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "-c", m.conf_path, "flush"],
                       env=m.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    down.wait_for(2, DEADLINE)
    assert tags(down.messages) == ["p0", "t0"]
    wait_until(lambda: m.queue_files() == [], DEADLINE, what="the queue to empty")


def test_mtactl_drain_without_drain_relay(mtad_factory, hops):
    """mtactl drain: stop accepting, deliver what can go, exit 75 with the rest on disk."""
    down = hops()
    down.tempfail("RCPT", rcpt="later@dst.test", reply="451 4.3.0 Not now")
    m = mtad_factory(drain_conf(down, None, timeout="3s"))
    send(m, "later", rcpt="later@dst.test")
    wait_until(lambda: "status=deferred" in m.maillog(), DEADLINE, what="a deferral")
    p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "-c", m.conf_path, "drain"],
                       env=m.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "draining" in p.stdout
    wait_until(lambda: not port_open("127.0.0.1", m.smtp_port), DEADLINE,
               what="the SMTP listener to close")
    rc = wait_exit(m)
    assert rc == 75, m.read_stderr()[-3000:]
    assert len(m.queue_files()) == 1
    assert "no drain_relay set" in m.read_stderr()


def test_mtactl_drain_empties_and_exits_zero(mtad_factory, hops):
    down, relay = hops(), hops()
    down.tempfail("RCPT", reply="451 4.3.0 Not now")
    m = mtad_factory(drain_conf(down, relay))
    send(m, "c1")
    send(m, "c2")
    wait_until(lambda: m.maillog().count("status=deferred") >= 2, DEADLINE, what="deferrals")
    p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "-c", m.conf_path, "drain"],
                       env=m.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "handing the rest over to 127.0.0.1 port %d" % relay.port in p.stdout, p.stdout
    assert wait_exit(m) == 0, m.read_stderr()[-3000:]
    assert tags(relay.messages) == ["c1", "c2"]
    assert m.queue_files() == []


def test_sigterm_without_drain_relay_stops_at_once(mtad_factory, hops):
    down = hops()
    down.tempfail("RCPT", reply="451 4.3.0 Not now")
    m = mtad_factory(drain_conf(down, None, timeout="60s"))
    send(m, "k1")
    wait_until(lambda: "status=deferred" in m.maillog(), DEADLINE, what="a deferral")
    t0 = time.monotonic()
    assert m.stop() == 0
    assert time.monotonic() - t0 < 10, "no drain_timeout wait without drain_relay"
    assert len(m.queue_files()) == 1
