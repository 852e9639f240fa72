"""Durability of the queue (SPEC §4 "a 250 after DATA means fsync'd", §5, issue 2).

Several smtplib clients send concurrently; every queue id acknowledged with
"250 2.0.0 Ok: queued as ID" is recorded with a token that is in its body.
mtad is then killed with SIGKILL (or stopped with SIGTERM) in the middle of
the traffic and started again. Every acknowledged id must be in the queue,
on disk (a committed file whose content holds its token) and counted by the
restarted daemon (/metrics mta_queue_messages); nothing uncommitted may be
left in queue/ or incoming/ (files being written, spare files made ahead)
and nothing may have been quarantined.

Mail stays queued: the relay is [127.0.0.1]:1, where nothing listens.
"""
import http.client
import os
import re
import signal
import smtplib
import threading
import time

from conftest import wait_until

CONF = {"smart_relay": "[127.0.0.1]:1"}
ID_RE = re.compile(rb"queued as ([0-9A-F]{16})")

# --- a reader of the queue file format (docs/queue.md), independent of the C code


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def read_queue_file(path):
    """(committed, content) of a queue file: committed = a valid end record."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] != b"MTQF\x01\x00\x00\x00":
        return False, b""
    off, content = 8, []
    while off + 5 <= len(b):
        t, ln = b[off], int.from_bytes(b[off + 1:off + 5], "little")
        if t == ord("E"):
            if ln != 20 or off + 25 > len(b):
                return False, b""
            crc = int.from_bytes(b[off + 21:off + 25], "little")
            return crc == crc32c(b[:off + 21]), b"".join(content)
        if t == ord("D"):
            content.append(b[off + 5:off + 5 + ln])
        off += 5 + ln
    return False, b""


def incoming_files(m):
    try:
        return sorted(os.listdir(os.path.join(m.data_dir, "incoming")))
    except FileNotFoundError:
        return []


def queue_metric(m, name="mta_queue_messages"):
    try:
        c = http.client.HTTPConnection("127.0.0.1", m.ui_port, timeout=5)
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        c.close()
    except OSError:
        return None
    if r.status != 200:
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


class Load:
    """n client threads sending until stop(); acked maps queue id -> token."""

    def __init__(self, m, nthreads=8, per_conn=(1, 5, 20)):
        self.m = m
        self.acked = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i, per_conn[i % len(per_conn)]),
                                         daemon=True) for i in range(nthreads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self):
        with self.lock:
            return len(self.acked)

    def run(self, tid, per_conn):
        n = 0
        deadline = time.monotonic() + 120
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                s = smtplib.SMTP("127.0.0.1", self.m.smtp_port, timeout=15)
                try:
                    s.ehlo("load%d.example.org" % tid)
                    for _ in range(per_conn):
                        if self.stopping.is_set():
                            break
                        n += 1
                        token = "token-%d-%d-%s" % (tid, n, "x" * (n % 7))
                        body = ("From: <s@example.org>\r\nTo: <r@example.net>\r\n"
                                "Subject: durability %s\r\n\r\n%s\r\n%s\r\n" %
                                (token, token, "line of filler text\r\n" * (40 + n % 200)))
                        s.mail("s%d@example.org" % tid)
                        s.rcpt("r%d@example.net" % tid)
                        code, resp = s.data(body.encode())
                        mo = ID_RE.search(resp or b"")
                        if code == 250 and mo:
                            with self.lock:
                                self.acked[mo.group(1).decode()] = token
                    s.quit()
                finally:
                    s.close()
            except (OSError, smtplib.SMTPException) as e:
                if not self.stopping.is_set():
                    # the daemon went away under us (the test stops it): that is the point
                    self.errors.append(repr(e))
                    if not self.m.proc or self.m.proc.poll() is not None:
                        return
                    time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive(), "a client thread did not finish"


def check_queue(m, acked):
    """Every acknowledged id is committed on disk with its token; all counted."""
    # The UI answers once the loop runs, i.e. after recovery has cleaned queue/.
    wait_until(lambda: queue_metric(m) is not None, 20, what="/metrics on the UI port")
    files = set(m.queue_files())
    missing = sorted(set(acked) - files)
    assert not missing, "acknowledged but not in the queue: %s" % missing[:10]
    for name in sorted(files):
        ok, content = read_queue_file(os.path.join(m.data_dir, "queue", name))
        assert ok, "%s: not a committed queue file after restart" % name
        if name in acked:
            assert acked[name].encode() in content, "%s: content lacks %s" % (name, acked[name])
    assert incoming_files(m) == [], "left in incoming/: %s" % incoming_files(m)[:5]
    corrupt = os.listdir(os.path.join(m.data_dir, "corrupt"))
    assert corrupt == [], "quarantined: %s" % corrupt
    got = queue_metric(m)
    assert got == len(files), "mta_queue_messages: got %s, want %d" % (got, len(files))
    return files


def run_interrupted(mtad_factory, interrupt, min_acked=150):
    m = mtad_factory(conf=CONF)
    load = Load(m).start()
    wait_until(lambda: load.count() >= min_acked or load.errors, 120,
               what="%d acknowledged messages" % min_acked)
    assert not load.errors, "errors before the interruption: %s" % load.errors[:3]
    interrupt(m)
    load.stop()
    with load.lock:
        acked = dict(load.acked)
    assert len(acked) >= min_acked
    before = {}
    for name in m.queue_files():
        before[name] = read_queue_file(os.path.join(m.data_dir, "queue", name))[0]
    m.uncommitted_before = sorted(n for n, ok in before.items() if not ok)
    m.incoming_before = incoming_files(m)
    m.start()
    files = check_queue(m, acked)
    # and the restarted daemon still accepts and commits
    s = smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=15)
    s.ehlo("after.example.org")
    s.mail("s@example.org")
    s.rcpt("r@example.net")
    code, resp = s.data(b"Subject: after\r\n\r\nafter restart\r\n")
    s.quit()
    assert code == 250 and ID_RE.search(resp), (code, resp)
    new_id = ID_RE.search(resp).group(1).decode()
    assert new_id not in files
    assert new_id > max(files), "ids keep increasing across restarts: %s after %s" % (
        new_id, max(files))
    wait_until(lambda: queue_metric(m) == len(files) + 1, 10, what="the counter to include it")
    return m, acked, files


def test_kill9_loses_no_acknowledged_message(mtad_factory):
    def kill(m):
        rc = m.kill9()
        assert rc == -signal.SIGKILL

    m, acked, files = run_interrupted(mtad_factory, kill, min_acked=300)
    # the kill left files that were never committed in incoming/ (open
    # transactions, spare files made ahead); recovery removed every one
    assert m.incoming_before, "nothing in incoming/ at the kill: the test did not bite"
    assert not (set(m.incoming_before) | set(m.uncommitted_before)) & files


def test_sigterm_under_load_loses_nothing(mtad_factory):
    def term(m):
        rc = m.stop(signal.SIGTERM, timeout=60)
        assert rc == 0, "exit status %s: %s" % (rc, m.read_stderr()[-2000:])

    m, acked, files = run_interrupted(mtad_factory, term, min_acked=300)
    # a clean stop leaves no half-written or spare file behind
    assert m.uncommitted_before == [], m.uncommitted_before[:5]
    assert m.incoming_before == [], m.incoming_before[:5]
    assert "uncommitted" not in m.read_stderr() and "unfinished" not in m.read_stderr()


def test_kill9_twice_in_a_row(mtad_factory):
    """A second crash right after recovery: still nothing lost."""
    m = mtad_factory(conf=CONF)
    load = Load(m, nthreads=4).start()
    wait_until(lambda: load.count() >= 60 or load.errors, 120, what="60 acknowledged")
    m.kill9()
    load.stop()
    acked = dict(load.acked)
    m.start()
    load2 = Load(m, nthreads=4).start()
    wait_until(lambda: load2.count() >= 60 or load2.errors, 120, what="60 more acknowledged")
    m.kill9()
    load2.stop()
    acked.update(load2.acked)
    m.start()
    check_queue(m, acked)
