"""Views of a big queue (SPEC §11.5, docs/web-ui.md): with a window of 20 and
more than 2,000 messages parked on disk (HTTP_PARKED_READ, what a filtered view
read before the index of parked messages), a filtered listing, its pages,
filtered bulk actions and qshape are complete and exact, and nothing says
"partial"; mtactl qshape agrees.

The messages go to a smart relay that refuses connections, so after their first
attempt every one waits an hour: the queue holds still while it is looked at.
"""
import json
import os
import re
import smtplib
import threading
import urllib.request

from conftest import metric, wait_until
from test_mtactl import ctl

LIMIT = 20
N_DST = 1900            # bob@dst.test, from alice@src.test
N_OTHER = 700           # eve@other.test, from carol@far.test
N = N_DST + N_OTHER     # more than 2,000 of them parked
CONNS = 4
DEADLINE = 240


def api(m, path, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (m.ui_port, path), data=data,
                                 method="POST" if data is not None else "GET",
                                 headers={"X-Requested-With": "mtad-test",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def inject(m, jobs):
    """jobs: (sender, rcpt, count) each; sent over CONNS parallel SMTP connections."""
    work = []
    for sender, rcpt, count in jobs:
        work += [(sender, rcpt, i) for i in range(count)]
    errors = []

    def conn(part):
        try:
            with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=60) as s:
                for sender, rcpt, i in part:
                    s.sendmail(sender, [rcpt], ("From: <%s>\r\nTo: <%s>\r\nSubject: v%d\r\n\r\n"
                                                "body %d\r\n" % (sender, rcpt, i, i)).encode())
        except Exception as e:       # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=conn, args=(work[k::CONNS],)) for k in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not errors, errors


def big_queue(mtad_factory):
    m = mtad_factory({"smart_relay": "[127.0.0.1]:1", "queue_active_limit": str(LIMIT),
                      "retry_min_backoff": "1h", "retry_max_backoff": "2h"})
    inject(m, [("alice@src.test", "bob@dst.test", N_DST),
               ("carol@far.test", "eve@other.test", N_OTHER)])
    # every message tried once and waiting an hour: nothing moves any more
    wait_until(lambda: metric(m, "mta_queue_deferred_messages") == N, DEADLINE,
               what="all %d deferred" % N)
    assert metric(m, "mta_queue_messages") == N
    return m


def no_partial(j):
    assert "partial" not in j and "note" not in j, {k: j[k] for k in ("partial", "note") if k in j}


def test_filtered_views_of_a_big_queue(mtad_factory):
    m = big_queue(mtad_factory)

    # a search by domain and by sender finds every match: exact totals, no note
    j = api(m, "/api/queue?domain=dst.test&limit=10")
    no_partial(j)
    assert j["total"] == N_DST and len(j["items"]) == 10, j["total"]
    assert j["counts"] == {"all": N, "active": 0, "deferred": N, "held": 0}, j["counts"]
    j = api(m, "/api/queue?sender=carol@far.test&limit=1")
    no_partial(j)
    assert j["total"] == N_OTHER and j["pages"] == N_OTHER, j
    j = api(m, "/api/queue?q=nobody@nowhere.test")
    assert j["total"] == 0 and j["items"] == [], j

    # the pages of a search: each row a match with its full details, every match once
    seen = []
    per = 150
    pages = (N_OTHER + per - 1) // per
    for p in range(1, pages + 1):
        j = api(m, "/api/queue?domain=other.test&per_page=%d&page=%d" % (per, p))
        no_partial(j)
        assert j["total"] == N_OTHER and j["page"] == p and j["pages"] == pages, j["total"]
        assert len(j["items"]) == (per if p < pages else N_OTHER - per * (pages - 1))
        for r in j["items"]:
            assert r["recipients"] == ["eve@other.test"] and r["sender"] == "carol@far.test", r
            assert r["state"] == "deferred" and r["attempts"] >= 1, r
            assert r["last_reply"], r      # read from the file: the refused connection
        seen += [r["id"] for r in j["items"]]
    assert len(seen) == len(set(seen)) == N_OTHER
    j = api(m, "/api/queue?domain=other.test&per_page=%d&page=%d" % (per, pages + 1))
    assert j["items"] == [] and j["total"] == N_OTHER

    # qshape counts every pending recipient, parked or not
    s = api(m, "/api/qshape")
    no_partial(s)
    assert s["total"]["count"] == N == metric(m, "mta_queue_recipients"), s["total"]
    assert [(d["domain"], d["count"]) for d in s["domains"]] == \
        [("dst.test", N_DST), ("other.test", N_OTHER)], s["domains"]
    p = ctl(m, "qshape")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^\s*TOTAL\s+%d\b" % N, p.stdout, re.M), p.stdout
    assert re.search(r"^\s*other\.test\s+%d\b" % N_OTHER, p.stdout, re.M), p.stdout
    assert "partial" not in p.stdout

    # a bulk hold by filter acts on every match, parked ones included
    r = api(m, "/api/queue/hold", {"domain": "other.test"})
    no_partial(r)
    assert (r["matched"], r["changed"], r["failed"]) == (N_OTHER, N_OTHER, 0), r
    j = api(m, "/api/queue?state=held&limit=1")
    no_partial(j)
    assert j["total"] == N_OTHER and j["counts"]["held"] == N_OTHER, j
    assert metric(m, "mta_queue_held_messages") == N_OTHER
    assert metric(m, "mta_queue_messages") == N
    # holding them again changes nothing
    r = api(m, "/api/queue/hold", {"sender": "carol@far.test"})
    assert (r["matched"], r["changed"]) == (N_OTHER, 0), r
    # the window stayed a window: parked messages were held on disk, not loaded
    st = api(m, "/api/stats")
    assert st["queue"]["held"] == N_OTHER, st["queue"]

    # release by filter: every one, and they wait as before
    r = api(m, "/api/queue/release", {"domain": "other.test"})
    assert (r["matched"], r["changed"], r["failed"]) == (N_OTHER, N_OTHER, 0), r
    assert api(m, "/api/queue?state=held")["total"] == 0
    assert metric(m, "mta_queue_held_messages") == 0
    assert api(m, "/api/queue?state=deferred&domain=other.test")["total"] == N_OTHER

    # retry by filter: every match is tried again now, through a window of 20
    deferred0 = metric(m, "mta_recipients_deferred_total")
    r = api(m, "/api/queue/retry", {"domain": "other.test"}, timeout=DEADLINE)
    assert (r["matched"], r["changed"], r["failed"]) == (N_OTHER, N_OTHER, 0), r
    wait_until(lambda: metric(m, "mta_recipients_deferred_total") >= deferred0 + N_OTHER and
               metric(m, "mta_queue_deferred_messages") == N, DEADLINE,
               what="the %d retried messages deferred again" % N_OTHER)
    assert metric(m, "mta_queue_messages") == N

    # mtactl's ALL reaches every message too, parked or not, and says nothing of "partial"
    p = ctl(m, "hold", "ALL", timeout=DEADLINE)
    assert p.returncode == 0 and "Placed on hold: %d messages" % N in p.stdout, p.stdout
    assert "partial" not in p.stdout
    assert metric(m, "mta_queue_held_messages") == N
    p = ctl(m, "release", "ALL", timeout=DEADLINE)
    assert p.returncode == 0 and "Released from hold: %d messages" % N in p.stdout, p.stdout
    assert metric(m, "mta_queue_held_messages") == 0

    # delete by filter: every match is gone, the rest stays
    r = api(m, "/api/queue/delete", {"sender": "carol@far.test"})
    assert (r["matched"], r["changed"], r["failed"]) == (N_OTHER, N_OTHER, 0), r
    wait_until(lambda: metric(m, "mta_queue_messages") == N_DST, 30, what="%d left" % N_DST)
    assert len(m.queue_files()) == N_DST
    assert api(m, "/api/queue?domain=other.test")["total"] == 0
    j = api(m, "/api/queue?domain=dst.test&limit=1")
    assert j["total"] == N_DST and j["counts"]["all"] == N_DST, j
    s = api(m, "/api/qshape")
    assert s["total"]["count"] == N_DST and len(s["domains"]) == 1, s
    assert m.maillog().count("removed") >= N_OTHER


def test_views_say_partial_while_the_index_is_rebuilt(mtad_factory):
    """After a kill -9 the index of parked messages is rebuilt from queue/ on its own
    thread; until it is ready, filtered views read at most 2,000 parked files and say
    "partial". A rebuild that cannot write its new file (here: a directory in the
    way of <data_dir>/queue.idx.new) leaves it not ready until the next start, which
    makes that state last long enough to look at."""
    m = big_queue(mtad_factory)
    assert m.kill9() != 0
    blocker = os.path.join(m.data_dir, "queue.idx.new")
    os.mkdir(blocker)
    m.start()
    wait_until(lambda: "cannot rebuild" in m.read_stderr(), DEADLINE,
               what="the index rebuild to fail")
    wait_until(lambda: metric(m, "mta_queue_messages") == N, DEADLINE, what="%d counted" % N)

    j = api(m, "/api/queue?domain=dst.test&limit=1")
    assert j.get("partial") is True and "being rebuilt" in j["note"], j
    assert j["total"] < N_DST, j["total"]
    s = api(m, "/api/qshape")
    assert s.get("partial") is True and "being rebuilt" in s["note"], s
    assert s["total"]["count"] < N
    p = ctl(m, "qshape")
    assert p.returncode == 0 and re.search(r"^partial: .*being rebuilt", p.stdout, re.M), p.stdout
    r = api(m, "/api/queue/hold", {"domain": "other.test"})
    assert r.get("partial") is True and r["matched"] == r["changed"] < N_OTHER, r
    p = ctl(m, "hold", "ALL")
    assert p.returncode == 0 and re.search(r"^partial: ", p.stdout, re.M), p.stdout
    p = ctl(m, "release", "ALL")
    assert p.returncode == 0, p.stderr

    # the next start rebuilds it: exact again, no note
    assert m.stop() == 0
    os.rmdir(blocker)
    m.start()
    wait_until(lambda: "partial" not in api(m, "/api/queue?domain=dst.test&limit=1"),
               DEADLINE, what="the index to be rebuilt")
    j = api(m, "/api/queue?domain=dst.test&limit=1")
    assert j["total"] == N_DST, j
    s = api(m, "/api/qshape")
    no_partial(s)
    assert s["total"]["count"] == N, s["total"]
    assert api(m, "/api/queue?state=held")["total"] == 0
