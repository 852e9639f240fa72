"""Dead destinations (issue: a backlog to a dead relay): once every connection to
a destination has failed, the rest of its mail is deferred at once ("delivery
temporarily suspended") without a connection per message, and mail to a
healthy destination is not held up.
"""
import socket
import time

from conftest import wait_until
from test_delivery import DEADLINE, log_lines, send, world_factory  # noqa: F401  (fixture)

N = 20

RECORDS = {
    "dead.test": {"MX": [(10, "mx.dead.test")]},
    "mx.dead.test": {"A": ["127.0.0.2"]},
    "ok.test": {"MX": [(10, "mx.ok.test")]},
    "mx.ok.test": {"A": ["127.0.0.3"]},
}


def run_backlog(m, w):
    for i in range(N):
        send(m, "alice@src.test", ["bob%d@dead.test" % i], tag="dead%d" % i)
    send(m, "alice@src.test", ["carol@ok.test"], tag="ok")
    msgs = w.hop(3).wait_for(1, DEADLINE)
    assert msgs[0].rcpts == ["carol@ok.test"]
    wait_until(lambda: len(log_lines(m, "status=deferred")) >= N, DEADLINE * 2,
               what="%d deferrals" % N)
    suspended = log_lines(m, "delivery temporarily suspended")
    return suspended


def test_refusing_destination_is_suspended(mtad_factory, world_factory):
    w = world_factory(RECORDS, hops=3)
    w.hop(2).tempfail("CONNECT", reply="421 4.3.2 Service shutting down")
    m = mtad_factory(w.conf(retry_min_backoff="30s", retry_max_backoff="60s"))
    suspended = run_backlog(m, w)
    # the first failures tried (up to the destination's starting concurrency), the rest not
    assert w.hop(2).connections <= 6, w.hop(2).connections
    assert len(suspended) >= N - 6, len(suspended)
    assert "421 4.3.2 Service shutting down" in suspended[0], suspended[0]
    assert "relay=none" in suspended[0], suspended[0]


def test_unreachable_destination_is_suspended(mtad_factory, world_factory):
    """Connections that time out (a relay that drops packets): one round, not one each.

    A listening socket whose accept queue is full and never read drops every
    SYN, as a filtering firewall does.
    """
    records = dict(RECORDS)
    records["mx.dead.test"] = {"A": ["127.0.0.9"]}
    w = world_factory(records, hops=3)
    sink = socket.socket()
    sink.bind(("127.0.0.9", w.port))
    sink.listen(0)
    filler = socket.create_connection(("127.0.0.9", w.port), timeout=5)
    try:
        m = mtad_factory(w.conf(retry_min_backoff="30s", retry_max_backoff="60s",
                                smtp_connect_timeout="2s"))
        t0 = time.monotonic()
        run_backlog(m, w)
        # the backlog waited for one round of 2 s timeouts, not one each
        assert time.monotonic() - t0 < 15
        # later mail for it is deferred at once, without another 2 s attempt
        t1 = time.monotonic()
        for i in range(5):
            send(m, "alice@src.test", ["late%d@dead.test" % i], tag="late%d" % i)
        wait_until(lambda: len(log_lines(m, "status=deferred")) >= N + 5, DEADLINE,
                   what="the late deferrals")
        assert time.monotonic() - t1 < 1.9
        late = [l for l in log_lines(m, "status=deferred") if "to=<late" in l]
        assert len(late) == 5
        assert all("delivery temporarily suspended: connect to mx.dead.test[127.0.0.9]" in l
                   and "Connection timed out" in l for l in late), late
    finally:
        filler.close()
        sink.close()
