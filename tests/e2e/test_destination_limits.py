"""Destination limits (SPEC §11.2): destination_rate_limit, destination_policy_file,
the concurrency feedback on throttling replies (halve, grow back, nothing bounces),
/api/destinations and the /metrics gauges; and connection reuse after a refused
transaction (RSET answered 250: the next message goes over the same connection).

Timing is asserted on the next hop's own receive timestamps, never on sleeps.
"""
import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from conftest import wait_until
from nexthop import NextHop, _Rule
from test_delivery import DEADLINE, log_lines, send, wait_log, world_factory  # noqa: F401

THROTTLE_REPLY = "421 4.7.0 Too many connections, slow down"


class SinkHop(NextHop):
    """A NextHop that stamps every accepted message, tracks concurrent
    connections and, while budget lasts, greets with a 421 any connection
    beyond max_conc open at once."""

    def __init__(self, *a, max_conc=0, budget=0, dataend_delay=0.0, **kw):
        super().__init__(*a, **kw)
        self.dataend_delay = dataend_delay   # seconds before the reply to "."
        self.max_conc = max_conc
        self.budget = budget
        self.throttled = 0
        self.max_active = 0
        self._active = 0
        self._open = set()

    def _new_conn(self, sock):
        n = super()._new_conn(sock)
        with self._lock:
            self._open.add(sock)
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        return n

    def _end_conn(self, sock):
        # called with the accepted socket first (and again with the session's)
        with self._lock:
            if sock in self._open:
                self._open.discard(sock)
                self._active -= 1
        super()._end_conn(sock)

    def _take_rule(self, at, rcpt, rcpts):
        if at == "DATAEND" and self.dataend_delay:
            self._stopping.wait(self.dataend_delay)
        if at == "CONNECT":
            with self._lock:
                if self.max_conc and self._active > self.max_conc and self.budget > 0:
                    self.budget -= 1
                    self.throttled += 1
                    return _Rule("CONNECT", "reply", THROTTLE_REPLY, None, None)
        return super()._take_rule(at, rcpt, rcpts)

    def _record(self, msg):
        msg.t = time.monotonic()
        super()._record(msg)


def start_hop(ip, port=0, **kw):
    for _ in range(20):
        try:
            return SinkHop(ip, port, name="sink.test", **kw).start()
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("cannot start a next hop on %s" % ip)


def api(m, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (m.ui_port, path), timeout=5) as r:
        return r.read().decode()


def dests(m):
    return json.loads(api(m, "/api/destinations"))


def span(msgs):
    ts = sorted(x.t for x in msgs)
    return ts[-1] - ts[0]


def max_in_window(msgs, window):
    ts = sorted(x.t for x in msgs)
    best = 0
    for i, t in enumerate(ts):
        j = i
        while j < len(ts) and ts[j] - t < window:
            j += 1
        best = max(best, j - i)
    return best


def relay_conf(w, hop, **extra):
    return w.conf(smart_relay="[%s]:%d" % (hop.host, hop.port), **extra)


# --- concurrency feedback -------------------------------------------------------

def test_throttle_halves_recovers_and_nothing_bounces(mtad_factory, world_factory):
    w = world_factory()
    # slow deliveries (0.2 s each) so that connections pile up however fast mtad is
    hop = start_hop("127.0.0.5", max_conc=2, budget=3, dataend_delay=0.2)
    try:
        m = mtad_factory(relay_conf(w, hop, destination_concurrency="4"))
        n = 40
        seen = {"throttled": None, "max_limit_after": 0}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    for d in dests(m)["destinations"]:
                        if d["destination"] != "127.0.0.5":
                            continue
                        if d["throttled"] and seen["throttled"] is None:
                            seen["throttled"] = d
                        if seen["throttled"] is not None:
                            seen["max_limit_after"] = max(seen["max_limit_after"],
                                                          d["concurrency_limit"])
                except OSError:
                    pass
                stop.wait(0.02)
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        try:
            for i in range(n):
                send(m, "alice@src.test", ["bob%d@far.test" % i], tag="t%d" % i)
            hop.wait_for(n, DEADLINE * 2)
            wait_until(lambda: "concurrency back to 4" in m.read_stderr(), DEADLINE,
                       what="the limit to grow back")
        finally:
            stop.set()
            t.join(5)
        assert hop.throttled >= 1
        d = seen["throttled"]
        assert d is not None, "never saw the destination throttled in /api/destinations"
        assert d["concurrency_limit"] < d["concurrency_max"] == 4, d
        assert THROTTLE_REPLY in d["last_throttle_reply"], d
        assert d["throttle_events"] >= 1, d
        err = m.read_stderr()
        assert "throttled by 127.0.0.5[127.0.0.5]:%d, concurrency" % hop.port in err, err[-3000:]
        assert len(hop.messages) == n
        assert log_lines(m, "status=bounced") == []
        assert len(log_lines(m, "status=sent")) == n
    finally:
        hop.stop()


def test_throttling_rcpt_reply_halves(mtad_factory, world_factory):
    """A 4.7.x "rate" reply to MAIL halves too; the job waits again, it is not deferred."""
    w = world_factory()
    hop = start_hop("127.0.0.5")
    try:
        hop.reply_at("MAIL", "451 4.7.1 Rate limit exceeded, try again later", times=2)
        m = mtad_factory(relay_conf(w, hop, destination_concurrency="4",
                                    retry_min_backoff="60s", retry_max_backoff="120s"))
        send(m, "alice@src.test", ["bob@far.test"], tag="r1")
        hop.wait_for(1, DEADLINE)
        assert "Rate limit exceeded" in m.read_stderr()
        assert log_lines(m, "status=deferred") == []   # waited at the destination instead
        assert len(log_lines(m, "status=sent")) == 1
    finally:
        hop.stop()


def test_refused_connection_halves_and_defers(mtad_factory, world_factory):
    """A refused connection is a throttling signal too; the mail is deferred, never bounced."""
    from conftest import free_port
    w = world_factory()
    port = free_port("127.0.0.5")     # nothing listens there: connect() is refused
    m = mtad_factory(w.conf(smart_relay="[127.0.0.5]:%d" % port, destination_concurrency="8",
                            retry_min_backoff="60s", retry_max_backoff="120s"))
    send(m, "alice@src.test", ["bob@far.test"], tag="c1")
    wait_log(m, "status=deferred")
    err = m.read_stderr()
    assert "throttled by 127.0.0.5[127.0.0.5]:%d, concurrency 5 -> 1: connect to" % port in err, \
        err[-2000:]
    assert "Connection refused" in err
    assert log_lines(m, "status=bounced") == []


def test_dashboard_lists_throttled_destination(mtad_factory, world_factory):
    """The dashboard's card shows a throttled destination with its limits and reply."""
    from test_ui_browser import browser_ready, run_browser
    why = browser_ready()
    if why:
        pytest.skip(why)
    w = world_factory()
    # a throttling reply halves the limit to 1; with 20 configured it takes 190
    # successes to grow back, far more than the 60 messages the rate spreads over 15 s
    hop = start_hop("127.0.0.5")
    try:
        hop.reply_at("MAIL", "451 4.7.1 Rate limit exceeded, slow down", times=1)
        m = mtad_factory(relay_conf(w, hop, destination_concurrency="20",
                                    destination_rate_limit="4/s", retry_min_backoff="60s",
                                    retry_max_backoff="120s"))
        for i in range(60):
            send(m, "alice@src.test", ["bob%d@far.test" % i], tag="t%d" % i)
        wait_until(lambda: any(d["throttled"] for d in dests(m)["destinations"]), DEADLINE,
                   what="a throttled destination")
        r = run_browser({"mode": "dests", "url": "http://127.0.0.1:%d/" % m.ui_port})
        assert r["consoleErrors"] == [], r["consoleErrors"]
        assert int(r["destsValue"]) >= 1, r
        assert "warn" in r["destsClass"], r
        item = r["dests"][0]
        assert item["text"].startswith("127.0.0.5 "), item
        assert "/20 · 4/s · " in item["text"] and "queued" in item["text"], item
        assert "451 4.7.1 Rate limit exceeded" in item["title"], item
        hop.wait_for(60, DEADLINE * 2)
        assert log_lines(m, "status=bounced") == []
    finally:
        hop.stop()


# --- rate limit -----------------------------------------------------------------

def test_rate_limit_spreads_deliveries(mtad_factory, world_factory):
    w = world_factory()
    hop = start_hop("127.0.0.5")
    try:
        m = mtad_factory(relay_conf(w, hop, destination_rate_limit="5/s",
                                    retry_min_backoff="60s", retry_max_backoff="120s"))
        for i in range(20):
            send(m, "alice@src.test", ["bob%d@far.test" % i], tag="t%d" % i)
        msgs = hop.wait_for(20, DEADLINE)
        # 20 at 5/s: 19 gaps of 200 ms
        assert span(msgs) >= 3.0, span(msgs)
        assert max_in_window(msgs, 1.0) <= 7, [round(x.t, 3) for x in msgs]
        assert log_lines(m, "status=deferred") == []
        out = api(m, "/metrics")
        assert "# TYPE mta_destination_concurrency_limit gauge" in out
    finally:
        hop.stop()


def test_rate_backlog_beyond_min_backoff_is_deferred(mtad_factory, world_factory):
    """More than the rate sends within retry_min_backoff is deferred, then delivered."""
    w = world_factory()
    hop = start_hop("127.0.0.5")
    try:
        m = mtad_factory(relay_conf(w, hop, destination_rate_limit="1/s",
                                    retry_min_backoff="1s", retry_max_backoff="2s"))
        for i in range(8):
            send(m, "alice@src.test", ["bob%d@far.test" % i], tag="t%d" % i)
        hop.wait_for(8, DEADLINE)
        deferred = log_lines(m, "status=deferred")
        assert deferred, "nothing deferred"
        assert all("delivery deferred: destination rate limit 1/s reached" in l
                   for l in deferred), deferred
        assert log_lines(m, "status=bounced") == []
    finally:
        hop.stop()


def test_metrics_and_api_show_active_destination(mtad_factory, world_factory):
    w = world_factory()
    hop = start_hop("127.0.0.5")
    try:
        m = mtad_factory(relay_conf(w, hop, destination_rate_limit="1/s",
                                    destination_concurrency="7", retry_min_backoff="60s",
                                    retry_max_backoff="120s"))
        for i in range(6):
            send(m, "alice@src.test", ["bob%d@far.test" % i], tag="t%d" % i)

        def active():
            d = [x for x in dests(m)["destinations"] if x["destination"] == "127.0.0.5"]
            return d and d[0]["queued"] > 0 and d[0]
        d = wait_until(active, DEADLINE, what="queued jobs at the destination")
        assert d["rate_limit"] == "1/s" and d["concurrency_max"] == 7, d
        assert d["kind"] == "relay" and d["port"] == hop.port and not d["throttled"], d
        out = api(m, "/metrics")
        assert 'mta_destination_concurrency_max{destination="127.0.0.5:%d"} 7' % hop.port in out
        assert 'mta_destination_throttled{destination="127.0.0.5:%d"} 0' % hop.port in out
        hop.wait_for(6, DEADLINE)
        # once idle, the destination (and its series) goes away
        wait_until(lambda: dests(m)["total"] == 0, DEADLINE, what="the destination to go")
        assert "127.0.0.5:%d" % hop.port not in api(m, "/metrics")
    finally:
        hop.stop()


# --- destination_policy_file ------------------------------------------------------

RECORDS = {
    "slow.test": {"MX": [(10, "mx.slow.test")]},
    "mx.slow.test": {"A": ["127.0.0.2"]},
    "fast.test": {"MX": [(10, "mx.fast.test")]},
    "mx.fast.test": {"A": ["127.0.0.3"]},
}


def sink_world(world_factory):
    """The world's next hops replaced by SinkHops on the same port."""
    w = world_factory(RECORDS, hops=3)
    port = w.port
    for i in (2, 3):
        w.hops[i].stop()
        w.hops[i] = start_hop("127.0.0.%d" % i, port)
    return w


def write_policy(m, text):
    path = os.path.join(m.data_dir, "policy.txt")
    os.makedirs(m.data_dir, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def test_policy_file_per_domain(mtad_factory, world_factory):
    w = sink_world(world_factory)
    m = mtad_factory(w.conf(destination_policy_file="policy.txt", destination_concurrency="10",
                            retry_min_backoff="60s", retry_max_backoff="120s"), start=False)
    write_policy(m, "# limits\nslow.test concurrency=1 rate=4/s\nother.test rate=none\n")
    m.start()
    for i in range(8):
        send(m, "alice@src.test", ["s%d@slow.test" % i], tag="s%d" % i)
        send(m, "alice@src.test", ["f%d@fast.test" % i], tag="f%d" % i)
    slow = w.hop(2).wait_for(8, DEADLINE)
    fast = w.hop(3).wait_for(8, DEADLINE)
    assert w.hop(2).max_active == 1
    assert span(slow) >= 1.5, span(slow)          # 7 gaps of 250 ms
    assert log_lines(m, "status=deferred") == []
    assert len(fast) == 8
    assert "destination_policy_file: 2 domain(s) from policy.txt" in m.read_stderr()


def test_policy_file_errors_and_sighup_reload(mtad_factory, world_factory):
    w = sink_world(world_factory)
    m = mtad_factory(w.conf(destination_policy_file="policy.txt", retry_min_backoff="60s",
                            retry_max_backoff="120s"), start=False)
    write_policy(m, "a.test concurrency=2\nb.test speed=3\n")
    r = m.run_check()
    assert r.returncode != 0
    assert "destination_policy_file policy.txt line 2: unknown option 'speed=3'" in r.stderr, r.stderr
    write_policy(m, "a.test concurrency=2\nb.test rate=10/m\n")
    r = m.run_check("--print")
    assert r.returncode == 0, r.stderr
    assert "\ndestination_rate_limit =" in r.stdout
    assert "# destination_policy a.test = concurrency=2\n" in r.stdout
    assert "# destination_policy b.test = rate=10/m\n" in r.stdout
    m.start()
    # the listeners open before the scheduler has read the file: wait for it
    wait_until(lambda: "destination_policy_file: 2 domain(s)" in m.read_stderr(), DEADLINE,
               what="the policy to be loaded")
    # a broken file at SIGHUP: named with its line, the running limits stay
    write_policy(m, "slow.test rate=3/s\nslow.test concurrency=1\n")
    m.proc.send_signal(signal.SIGHUP)
    try:
        wait_until(lambda: "reload failed" in m.read_stderr(), DEADLINE, what="the failed reload")
    except AssertionError:
        raise AssertionError("no failed reload: " + m.read_stderr()[-3000:])
    assert "destination_policy_file policy.txt line 2: domain slow.test repeated (first on line 1)" in m.read_stderr()
    write_policy(m, "slow.test rate=3/s\n")
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in m.read_stderr(), DEADLINE, what="the reload")
    for i in range(7):
        send(m, "alice@src.test", ["s%d@slow.test" % i], tag="s%d" % i)
    slow = w.hop(2).wait_for(7, DEADLINE)
    assert span(slow) >= 1.6, span(slow)          # 6 gaps of 333 ms


# --- connection reuse after a refused transaction -----------------------------------

def test_reuse_after_refused_rcpt(mtad_factory, world_factory):
    w = world_factory()
    hop = start_hop("127.0.0.5")
    try:
        hop.permfail("RCPT", rcpt="nobody@far.test")
        m = mtad_factory(relay_conf(w, hop))
        send(m, "", ["nobody@far.test"], tag="r1")   # no DSN to share the relay
        wait_log(m, "to=<nobody@far.test>")
        send(m, "alice@src.test", ["bob@far.test"], tag="r2")
        hop.wait_for(1, DEADLINE)
        assert hop.connections == 1, hop.verbs()
        v = hop.verbs(0)
        assert "RSET" in v and v.count("MAIL") == 2, v
    finally:
        hop.stop()


def test_refused_rset_closes_the_connection(mtad_factory, world_factory):
    w = world_factory()
    hop = start_hop("127.0.0.5")
    try:
        hop.permfail("RCPT", rcpt="nobody@far.test")
        hop.reply_at("RSET", "502 5.5.1 not today")
        m = mtad_factory(relay_conf(w, hop))
        send(m, "", ["nobody@far.test"], tag="r1")   # no DSN to share the relay
        wait_log(m, "to=<nobody@far.test>")
        send(m, "alice@src.test", ["bob@far.test"], tag="r2")
        hop.wait_for(1, DEADLINE)
        assert hop.connections == 2, hop.verbs()
    finally:
        hop.stop()
