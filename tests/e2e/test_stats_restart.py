"""Counters and graphs across restarts: data_dir/stats.

The totals of /api/stats and /metrics and the history behind the dashboard's
graphs are saved every minute and at a clean stop, and read back at start
(docs/web-ui.md, "Counters across restarts").
"""
import os
import re
import signal

from conftest import wait_until
from http_helpers import Api
from test_delivery import DEADLINE, send, wait_log, queue_empty, \
    world_factory  # noqa: F401  (fixture)

TOTALS = ("accepted", "delivered", "deferred", "bounced", "rejected")
PROM = ("mta_messages_accepted_total", "mta_recipients_delivered_total",
        "mta_recipients_deferred_total", "mta_messages_rejected_total",
        "mta_smtp_sessions_total")


def prom(api):
    text = api.get("/metrics").body.decode()
    out = {}
    for name in PROM:
        m = re.search(r"^%s (\d+)$" % name, text, re.M)
        assert m, "%s missing from /metrics" % name
        out[name] = int(m.group(1))
    return out


def history_sum(api, rng, field):
    h = api.json("/api/history?range=%s" % rng)
    return sum(h[field]), len(h["t"])


def refuse_one(m):
    """One refused RCPT (a syntax error): the rejected counter moves."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("alice@src.test")
        code, _ = s.rcpt("not an address")
        assert code >= 500, code


def test_totals_and_history_survive_sigterm(mtad_factory, world_factory):
    w = world_factory()
    w.hop(2).tempfail("RCPT", times=1)
    m = mtad_factory(w.conf(smart_relay="[127.0.0.2]:%d" % w.port))
    api = Api(m)
    for i in range(3):
        send(m, "alice@src.test", ["bob%d@dst.test" % i], tag="st%d" % i)
    refuse_one(m)
    w.hop(2).wait_for(3, DEADLINE)
    queue_empty(m)
    before = wait_until(lambda: (lambda t: t if t["delivered"] == 3 else None)(
        api.json("/api/stats")["totals"]), DEADLINE, what="3 delivered")
    assert before["accepted"] == 3 and before["deferred"] == 1 and before["rejected"] >= 1, before
    p_before = prom(api)
    assert m.stop() == 0
    assert os.path.exists(os.path.join(m.data_dir, "stats")), "saved at a clean stop"

    m.start()
    api = Api(m)
    after = api.json("/api/stats")["totals"]
    for k in TOTALS:
        assert after[k] == before[k], "%s: got %s after the restart, want %s" % (
            k, after[k], before[k])
    p_after = prom(api)
    for k in PROM:
        assert p_after[k] >= p_before[k], "%s went backwards: %s -> %s" % (
            k, p_before[k], p_after[k])
    # the 1 h graph still holds what happened before the stop
    acc, n = history_sum(api, "1h", "accepted")
    assert acc == 3 and n >= 1, (acc, n)
    dlv, _ = history_sum(api, "1h", "delivered")
    assert dlv == 3, dlv
    # and the counting goes on from there
    send(m, "alice@src.test", ["bob9@dst.test"], tag="st9")
    w.hop(2).wait_for(4, DEADLINE)
    wait_until(lambda: api.json("/api/stats")["totals"]["delivered"] == 4, DEADLINE,
               what="4 delivered")
    assert "restored" in m.read_stderr()


def test_kill9_loses_at_most_a_minute(mtad_factory, world_factory):
    """After kill -9, what the last minute's save held comes back, the 24 h graph too."""
    w = world_factory()
    m = mtad_factory(w.conf(smart_relay="[127.0.0.2]:%d" % w.port))
    api = Api(m)
    for i in range(2):
        send(m, "alice@src.test", ["k%d@dst.test" % i], tag="k%d" % i)
    w.hop(2).wait_for(2, DEADLINE)
    stats = os.path.join(m.data_dir, "stats")
    # the first save comes a minute after the start
    wait_until(lambda: os.path.exists(stats), 90, interval=0.5, what="the first save")
    day_before = history_sum(api, "24h", "accepted")
    assert day_before[1] >= 1 and day_before[0] == 2, day_before
    assert m.kill9() == -signal.SIGKILL
    m.start()
    api = Api(m)
    t = api.json("/api/stats")["totals"]
    assert t["accepted"] == 2 and t["delivered"] == 2, t
    day_after = history_sum(api, "24h", "accepted")
    assert day_after[0] == 2 and day_after[1] >= day_before[1], (day_before, day_after)


def test_damaged_file_starts_from_zero(mtad_factory, world_factory):
    w = world_factory()
    m = mtad_factory(w.conf(smart_relay="[127.0.0.2]:%d" % w.port))
    api = Api(m)
    send(m, "alice@src.test", ["d@dst.test"], tag="d0")
    w.hop(2).wait_for(1, DEADLINE)
    wait_until(lambda: api.json("/api/stats")["totals"]["delivered"] == 1, DEADLINE,
               what="1 delivered")
    assert m.stop() == 0
    path = os.path.join(m.data_dir, "stats")
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF           # one damaged byte: the checksum fails
        f.seek(0)
        f.write(data)
    m.start()
    api = Api(m)
    t = api.json("/api/stats")["totals"]
    assert t["accepted"] == 0 and t["delivered"] == 0, t
    assert "checksum mismatch" in m.read_stderr()
    # a truncated file is no better, and no worse
    assert m.stop() == 0
    with open(path, "r+b") as f:
        f.truncate(10)
    m.start()
    assert Api(m).json("/api/stats")["totals"]["accepted"] == 0
    assert "unusable" in m.read_stderr()
