"""mtactl's queue filters (--domain, --sender, --rcpt, --state, --min-age,
--max-age, --search; mtactl(1)): listings through the API and, mtad stopped,
from data_dir with the same result; bulk hold, release, delete and flush by
filter; usage errors; and a window (queue_active_limit) smaller than the
queue, so that messages parked on disk are among the matches.

Delivery goes to a smart relay that refuses connections and a retry waits an
hour: after its first attempt every message holds still while it is looked at.
"""
import json
import os
import re
import smtplib
import subprocess

import pytest

from conftest import metric, wait_until
from test_mtactl import MTACTL, ROW, ctl

STILL = {"smart_relay": "[127.0.0.1]:1", "retry_min_backoff": "1h",
         "retry_max_backoff": "2h"}


def send_many(m, jobs):
    """jobs: (sender, rcpt, count) each, over one SMTP connection."""
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=60) as s:
        for sender, rcpt, count in jobs:
            for i in range(count):
                s.sendmail(sender, [rcpt], ("From: <%s>\r\nTo: <%s>\r\nSubject: f%d\r\n\r\n"
                                            "body %d\r\n" % (sender, rcpt, i, i)).encode())


def rows(m, *args):
    """mtactl queue --json ARGS: {queue_id: row}."""
    p = ctl(m, "queue", "--json", *args)
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        r = json.loads(line)
        assert r["queue_id"] not in out, "listed twice: " + line
        out[r["queue_id"]] = r
    return out


def text_ids(m, *args):
    """mtactl ARGS in mailq's text layout: the ids listed, checking the footer."""
    p = ctl(m, *args)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    if lines == ["Mail queue is empty"]:
        return set()
    ids = [mo.group(1) for mo in map(ROW.match, lines) if mo]
    assert re.match(r"^-- \d+ Kbytes in %d Requests?\.$" % len(ids), lines[-1]), lines[-1]
    assert len(ids) == len(set(ids)), p.stdout
    return set(ids)


def by_domain(all_rows, domain):
    return {i for i, r in all_rows.items()
            if any(x["address"].endswith("@" + domain) for x in r["recipients"])}


@pytest.fixture
def two_domains(mtad_factory):
    """3 messages alice@src.test -> a.test, 2 carol@far.test -> b.test, all
    deferred, then one of b.test's held."""
    m = mtad_factory(conf=STILL)
    send_many(m, [("alice@src.test", "x@a.test", 3), ("carol@far.test", "y@b.test", 2)])
    wait_until(lambda: metric(m, "mta_queue_deferred_messages") == 5, 30,
               what="5 deferred messages")
    every = rows(m)
    a, b = by_domain(every, "a.test"), by_domain(every, "b.test")
    assert len(a) == 3 and len(b) == 2 and not a & b
    held = sorted(b)[0]
    p = ctl(m, "hold", held)
    assert p.returncode == 0, p.stderr
    return m, a, b, held


def test_filtered_listing_online_and_offline(two_domains):
    m, a, b, held = two_domains
    every = a | b
    online = {}
    for args, want in [
            (("--domain", "a.test"), a),
            (("--domain=b.test",), b),
            (("--domain", "@B.TEST"), b),                 # as the API: '@' and case ignored
            (("--state", "held"), {held}),
            (("--state", "deferred"), every - {held}),
            (("--state", "deferred", "--domain", "b.test"), b - {held}),
            (("--search", "carol"), b),
            (("--sender", "alice@src"), a),
            (("--rcpt", "y@b"), b),
            (("--sender", "alice", "--domain", "b.test"), set()),
            (("--min-age", "1h"), set()),
            (("--max-age", "1h"), every),
            (("--search", sorted(a)[1].lower()), {sorted(a)[1]}),   # an id is text too
    ]:
        got = set(rows(m, *args))
        assert got == want, (args, got, want)
        assert text_ids(m, "queue", *args) == want, args
        online[args] = got
    # the short form, and mailq with a filter
    assert text_ids(m, "search", "carol@far") == b
    p = subprocess.run([MTACTL, "mailq", "--domain", "a.test"], capture_output=True,
                       text=True, timeout=60, env=dict(m.env, MTAD_CONFIG=m.conf_path))
    assert p.returncode == 0, p.stderr
    assert set(mo.group(1) for mo in map(ROW.match, p.stdout.splitlines()) if mo) == a
    # a held row keeps its mark, the others keep theirs
    p = ctl(m, "queue", "--domain", "b.test")
    marks = {mo.group(1): mo.group(2) for mo in map(ROW.match, p.stdout.splitlines()) if mo}
    assert marks == {i: "!" if i == held else " " for i in b}, marks

    # mtad stopped: mtactl reads data_dir and the same filters select the same messages
    m.stop()
    for args, want in online.items():
        assert set(rows(m, *args)) == want, ("offline", args)
        assert text_ids(m, "queue", *args) == want, ("offline", args)
    assert text_ids(m, "search", "carol@far") == b
    # only the daemon changes its queue
    p = ctl(m, "hold", "--domain", "a.test")
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert "running" in p.stderr
    assert set(rows(m, "--state", "held")) == {held}


def test_bulk_actions_by_filter(two_domains):
    m, a, b, held = two_domains
    p = ctl(m, "hold", "--domain", "a.test")
    assert p.returncode == 0, p.stderr
    assert "Placed on hold: 3 messages (3 matched, 0 failed)" in p.stdout, p.stdout
    assert set(rows(m, "--state", "held")) == a | {held}
    # again: they match, nothing changes
    p = ctl(m, "hold", "--domain", "a.test")
    assert p.returncode == 0 and "0 messages (3 matched, 0 failed)" in p.stdout, p.stdout

    p = ctl(m, "release", "--domain", "a.test", "--sender", "alice")
    assert p.returncode == 0, p.stderr
    assert "Released from hold: 3 messages (3 matched" in p.stdout, p.stdout
    assert set(rows(m, "--state", "held")) == {held}

    # flush by filter: the deferred matches are tried now (and fail again)
    p = ctl(m, "flush", "--domain", "b.test", "--state", "deferred")
    assert p.returncode == 0, p.stderr
    assert "(1 matched, 0 failed)" in p.stdout, p.stdout

    p = ctl(m, "delete", "--domain", "a.test")
    assert p.returncode == 0, p.stderr
    assert "Deleted: 3 messages (3 matched, 0 failed)" in p.stdout, p.stdout
    wait_until(lambda: set(rows(m)) == b, 20, what="only b.test's messages left")
    assert set(rows(m, "--state", "held")) == {held}
    assert text_ids(m, "queue", "--domain", "a.test") == set()


def test_usage_errors(two_domains):
    m, a, b, held = two_domains
    for args, text in [
            (("queue", "--state", "bogus"), "--state bogus"),
            (("queue", "--min-age", "5x"), "--min-age 5x"),
            (("queue", "--max-age", "-1"), "--max-age"),
            (("queue", "--domain"), "--domain: needs a value"),
            (("queue", "--domain="), "--domain: empty value"),
            (("queue", "--search", "x" * 400), "longer than 320"),
            (("hold",), "give queue IDs, ALL or a filter"),
            (("delete", sorted(a)[0], "--domain", "a.test"), "not both"),
            (("release", "ALL", "--state", "held"), "not both"),
            (("stats", "--domain", "a.test"), "takes no filter"),
            (("show", sorted(a)[0], "--domain", "a.test"), "takes no filter"),
            (("search",), "search"),
            (("search", "a", "b"), "search"),
    ]:
        p = ctl(m, *args)
        assert p.returncode == 1, (args, p.returncode, p.stdout, p.stderr)
        assert text in p.stderr, (args, p.stderr)
        assert p.stdout == "", (args, p.stdout)
    # nothing was changed by any of them
    assert set(rows(m, "--state", "held")) == {held}
    assert set(rows(m)) == a | b
    # the usage text names every command and the filters
    p = ctl(m, "--help")
    for word in ("queue", "search", "show", "flush", "delete", "hold", "release", "stats",
                 "qshape", "check-config", "health", "drain", "dkim-record", "--domain",
                 "--sender", "--rcpt", "--state", "--min-age", "--max-age", "--search"):
        assert re.search(r"(^|\s)%s\b" % re.escape(word), p.stderr), word


LIMIT = 10
N_A, N_B = 14, 9


def test_filters_over_parked_messages(mtad_factory):
    """queue_active_limit = 10 and 23 messages: 13 of them are parked on disk,
    and the filters find them all, online and offline."""
    m = mtad_factory(conf=dict(STILL, queue_active_limit=str(LIMIT)))
    send_many(m, [("alice@src.test", "x@a.test", N_A), ("carol@far.test", "y@b.test", N_B)])
    wait_until(lambda: metric(m, "mta_queue_deferred_messages") == N_A + N_B, 60,
               what="%d deferred messages" % (N_A + N_B))
    every = rows(m)
    assert len(every) == N_A + N_B
    # the window holds at most LIMIT: the API's listing goes on by a cursor into parked files
    from test_queue_views import api
    assert api(m, "/api/queue?offset=0&limit=%d" % (LIMIT + 5)).get("cursor", 0) > 0
    a, b = by_domain(every, "a.test"), by_domain(every, "b.test")
    assert (len(a), len(b)) == (N_A, N_B)
    assert set(rows(m, "--domain", "a.test")) == a
    assert text_ids(m, "queue", "--domain", "b.test") == b
    assert text_ids(m, "search", "carol") == b

    p = ctl(m, "hold", "--domain", "b.test")
    assert p.returncode == 0, p.stderr
    assert "Placed on hold: %d messages (%d matched, 0 failed)" % (N_B, N_B) in p.stdout, p.stdout
    assert set(rows(m, "--state", "held")) == b
    assert set(rows(m, "--state", "deferred")) == a
    assert metric(m, "mta_queue_held_messages") == N_B
    assert "partial" not in ctl(m, "queue", "--state", "held").stdout

    m.stop()
    assert set(rows(m, "--state", "held")) == b
    assert set(rows(m, "--domain", "a.test")) == a
    assert text_ids(m, "queue", "--state", "deferred") == a


def test_paging_and_partial_against_a_fake_api(mtad_factory):
    """With a filter mtactl asks for pages of 500 until the reply's total is
    reached, sends the filter percent-encoded, and prints the "partial:" line
    of a reply that has one; a bulk action prints matched, changed and
    failed. The API is played by a canned server."""
    from test_mtactl_api import FakeApi, _row
    m = mtad_factory(conf={"ssl_disabled": "yes"}, start=False)
    fake = FakeApi(m.ui_port)
    try:
        ids = ["%016X" % (0x1000 + i) for i in range(501)]

        def listing(path):
            off = int(re.search(r"[?&]offset=(\d+)", path).group(1))
            reply = {"items": [_row(i, 1) for i in ids[off:off + 500]], "total": len(ids)}
            if off >= 500:
                reply.update(partial=True, note="the index is being rebuilt")
            return 200, reply
        fake.replies = {("GET", "/api/queue"): listing}
        p = ctl(m, "queue", "--domain", "a.test", "--sender", "x@y z&w")
        assert p.returncode == 0, p.stderr
        got = [mo.group(1) for mo in map(ROW.match, p.stdout.splitlines()) if mo]
        assert got == ids
        assert p.stdout.splitlines()[-2:] == ["-- 147 Kbytes in 501 Requests.",
                                            "partial: the index is being rebuilt"], p.stdout
        assert [s for _, s in fake.seen] == [
            "/api/queue?offset=%d&limit=500&order=asc&domain=a.test&sender=x%%40y%%20z%%26w" % o
            for o in (0, 500)], fake.seen
        # --json: the note goes to stderr, the lines stay JSON
        p = ctl(m, "queue", "--json", "--state", "held")
        assert p.returncode == 0, p.stderr
        assert [json.loads(x)["queue_id"] for x in p.stdout.splitlines()] == ids
        assert p.stderr == "partial: the index is being rebuilt\n", p.stderr

        fake.seen.clear()
        fake.replies = {("POST", "/api/queue/hold"): (200, {
            "action": "hold", "matched": 5, "changed": 4, "failed": 1, "partial": True,
            "note": "read 2000 of 9000"})}
        p = ctl(m, "hold", "--max-age", "2h", "--search", "a+b")
        assert p.returncode == 5, (p.returncode, p.stdout, p.stderr)
        assert p.stdout == ("mtactl: Placed on hold: 4 messages (5 matched, 1 failed)\n"
                            "partial: read 2000 of 9000\n"), p.stdout
        assert "1 message could not be changed" in p.stderr
        assert fake.seen == [("POST", "/api/queue/hold?max_age=2h&q=a%2Bb")], fake.seen

        # the API refusing a filter is a usage error
        fake.replies = {("GET", "/api/queue"): (400, {"error": "state: want active"})}
        p = ctl(m, "queue", "--state", "active")
        assert p.returncode == 1 and "HTTP 400: state: want active" in p.stderr, p.stderr
    finally:
        fake.stop()
