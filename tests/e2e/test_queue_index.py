"""The index of parked messages, <data_dir>/queue.idx (docs/queue.md, "The
index"): parked messages get one record each; a kill -9 leaves no marker,
so the next start rebuilds the index from queue/ off the event loop (and
logs it); a clean stop leaves the marker, and the next start only checks
the file. The views that read the index are tested with the API.
"""
import json
import os
import re
import struct
import urllib.request

from conftest import metric, wait_until
from test_delivery import DEADLINE, dns_with, world_factory  # noqa: F401
from test_durability import crc32c
from test_queue_window import send_many

N = 120
LIMIT = 20
MAGIC = b"mtaidx1\n"


def index_records(m):
    """The records of queue.idx, decoded and checked here: [(id, sender, rcpts)]."""
    with open(os.path.join(m.data_dir, "queue.idx"), "rb") as f:
        b = f.read()
    assert b[:8] == MAGIC
    off, out = 8, []
    while off < len(b):
        (ln,) = struct.unpack_from("<I", b, off)
        assert 36 <= ln <= 1024 * 1024 - 4 and off + 4 + ln <= len(b), (off, ln, len(b))
        rec = b[off:off + 4 + ln]
        (crc,) = struct.unpack_from("<I", rec, len(rec) - 4)
        assert crc32c(rec[:-4]) == crc, "record at %d: bad crc" % off
        key, arrival, size, nrcpt, flags = struct.unpack_from("<QQQII", rec, 4)
        strs = rec[36:-4].split(b"\0")[:-1]
        assert flags == 0 and len(strs) == nrcpt + 1, (flags, strs, nrcpt)
        out.append(("%016X" % key, strs[0].decode(), [s.decode() for s in strs[1:]]))
        off += 4 + ln
    return out


def search_total(m):
    """A filtered listing over every queued message: its total, from the index (never partial)."""
    req = urllib.request.Request("http://127.0.0.1:%d/api/queue?domain=dst.test&limit=1" % m.ui_port,
                                 headers={"X-Requested-With": "mtad-test"})
    with urllib.request.urlopen(req, timeout=30) as r:
        j = json.loads(r.read())
    assert "partial" not in j, j
    return j["total"]


def test_index_rebuilt_after_kill9_and_trusted_after_clean_stop(mtad_factory, world_factory):
    w = world_factory(dns_with({
        "dst.test": {"MX": [(10, "mx.dst.test")]},
        "mx.dst.test": {"A": ["127.0.0.2"]},
    }))
    w.hop(2).tempfail("RCPT", reply="451 4.3.0 Not now")
    m = mtad_factory(w.conf(retry_min_backoff="1h", retry_max_backoff="2h",
                            queue_active_limit=str(LIMIT)))
    send_many(m, N, "k")
    wait_until(lambda: metric(m, "mta_queue_deferred_messages") == N, DEADLINE * 3,
               what="all %d deferred" % N)
    files = m.queue_files()
    assert len(files) == N

    # parked messages have one record each; the loaded ones none yet
    recs = index_records(m)
    ids = [r[0] for r in recs]
    assert len(ids) == len(set(ids)), "a message with two records"
    assert set(ids) <= set(files)
    assert len(ids) >= N - LIMIT, (len(ids), N - LIMIT)
    assert all(r[1] == "alice@src.test" and r[2] == ["bob@dst.test"] for r in recs)
    assert not os.path.exists(os.path.join(m.data_dir, "queue.idx.ok"))

    # kill -9: no marker; the next start rebuilds from queue/, every file once
    m.kill9()
    assert not os.path.exists(os.path.join(m.data_dir, "queue.idx.ok"))
    before = len(m.read_stderr())
    m.start()
    wait_until(lambda: re.search(r"queue\.idx: rebuilt: %d file\(s\) read, %d record\(s\)" % (N, N),
                                 m.read_stderr()[before:]),
               DEADLINE, what="the index rebuilt")
    log = m.read_stderr()[before:]
    assert "queue.idx: rebuilding the index of parked messages from queue/" in log
    recs = index_records(m)
    assert sorted(r[0] for r in recs) == files
    wait_until(lambda: metric(m, "mta_queue_messages") == N, DEADLINE, what="all counted")
    assert search_total(m) == N             # the views read the rebuilt index

    # new mail after the rebuild: recorded when parked, or at the stop
    send_many(m, 5, "n")
    wait_until(lambda: metric(m, "mta_queue_deferred_messages") == N + 5, DEADLINE * 2,
               what="5 more deferred")

    # a clean stop: the marker; the next start checks the file and does not rebuild it
    assert m.stop() == 0
    assert os.path.exists(os.path.join(m.data_dir, "queue.idx.ok"))
    recs = index_records(m)
    assert sorted(r[0] for r in recs) == sorted(m.queue_files())      # loaded ones added at the stop
    ino = os.stat(os.path.join(m.data_dir, "queue.idx")).st_ino
    before = len(m.read_stderr())
    m.start()
    wait_until(lambda: "queue.idx: the index of parked messages is complete: %d record(s) checked"
               % (N + 5) in m.read_stderr()[before:], DEADLINE, what="the index checked")
    assert "rebuilding" not in m.read_stderr()[before:]
    wait_until(lambda: metric(m, "mta_queue_messages") == N + 5, DEADLINE, what="all counted")
    assert search_total(m) == N + 5
    assert os.stat(os.path.join(m.data_dir, "queue.idx")).st_ino == ino
    assert not os.path.exists(os.path.join(m.data_dir, "queue.idx.ok"))
