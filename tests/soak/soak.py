#!/usr/bin/python3
"""soak.py - kill -9 soak of mtad's queue: nothing acknowledged may be lost

usage: tests/soak/soak.py [--cycles 100] [--senders 4] [--seconds 2.5]
                          [--disk-cycles 3] [--disk-mb 16] [--mtad build/mtad]
                          [--report FILE.json]
(`make soak`; about 10 minutes on two busy cores; not part of `make test`.)

Phase 1, kill cycles: one mtad with one data_dir relays everything to a
next hop on loopback (tests/e2e/nexthop.py, accepting). Each cycle starts
mtad, runs several parallel senders for a few seconds (connections of 1, 5
or 20 messages, one or two recipients each), kills mtad with SIGKILL in the
middle of the traffic and of the deliveries, and starts it again in the next
cycle. A recipient counts as acknowledged once its message got "250 ... queued
as ID" after DATA; every message carries a unique token.

Phase 2, full disk: a fresh mtad whose data_dir is a small tmpfs (root only;
skipped with the reason otherwise) while the next hop answers 451 to MAIL,
so the queue grows until mtad refuses new mail. Senders keep pushing for a
moment after the first refusal, then SIGKILL and restart, --disk-cycles
times on the full disk; then the next hop accepts again and the queue drains.

At the end of each phase mtad is started once more and must deliver every
acknowledged recipient (while it makes progress, within an overall bound) and
end with an empty queue, then
stop on SIGTERM. Printed per phase and in total: acknowledged, found
(delivered at least once), lost, duplicates (deliveries beyond the first of an
acknowledged recipient) and delivered-but-unacknowledged (the client saw
the connection die before the 250: allowed). Exit status 1 when anything
acknowledged was lost or duplicates reach 0.1 % of the acknowledged.
"""
import argparse
import collections
import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

ID_RE = re.compile(rb"queued as ([0-9A-F]{16})")
TOKEN_RE = re.compile(rb"X-Soak-Token: (\S+)")
SINK_FLUSH = 0.05       # seconds: the next hop's notes reach its file this often
SENT_RE = re.compile(r" ([0-9A-F]{16}): to=<([^>]*)>, .*status=sent ")
# The final delivery of a phase: the backlog grows with mtad's accept rate (it
# accepts faster than the Python next hop takes), so it is given time as long
# as it makes progress: it fails when no further acknowledged recipient arrives
# for DRAIN_STALL seconds, or after DRAIN_MAX seconds in all.
DRAIN_STALL = 120
DRAIN_MAX = 1800


class Senders:
    """n threads sending until stop(); acked: (token, rcpt) -> queue id."""

    def __init__(self, port, n, body_size, tag):
        self.port = port
        self.body_size = body_size
        self.tag = tag
        self.lock = threading.Lock()
        self.acked = {}
        self.refused = 0          # 4xx/5xx replies to MAIL/RCPT/DATA (full disk)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
            if t.is_alive():
                raise RuntimeError("a sender thread did not finish in 30 s")

    def run(self, tid):
        per_conn = (1, 5, 20)[tid % 3]
        n = 0
        deadline = time.monotonic() + 300
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                s = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
            except OSError:
                time.sleep(0.05)     # mtad is not up (yet): bounded retry
                continue
            try:
                s.ehlo("soak%d.example.org" % tid)
                for _ in range(per_conn):
                    if self.stopping.is_set():
                        break
                    n += 1
                    token = "%s-%d-%d" % (self.tag, tid, n)
                    rcpts = ["r%d-%d@dst.example" % (tid, n)]
                    if n % 4 == 0:
                        rcpts.append("s%d-%d@dst.example" % (tid, n))
                    fill = ("soak filler line %s\r\n" % token) * max(
                        1, (self.body_size + n % 3000) // 40)
                    body = ("From: <s%d@src.example>\r\nTo: <%s>\r\nSubject: soak %s\r\n"
                            "X-Soak-Token: %s\r\n\r\n%s" % (tid, rcpts[0], token, token, fill))
                    code, _ = s.mail("s%d@src.example" % tid)
                    if code != 250:
                        with self.lock:
                            self.refused += 1
                        s.rset()
                        continue
                    ok = []
                    for r in rcpts:
                        code, _ = s.rcpt(r)
                        if code == 250:
                            ok.append(r)
                        else:
                            with self.lock:
                                self.refused += 1
                    if not ok:
                        s.rset()
                        continue
                    code, resp = s.data(body.encode())
                    mo = ID_RE.search(resp or b"")
                    if code == 250 and mo:
                        with self.lock:
                            for r in ok:
                                self.acked[(token, r)] = mo.group(1).decode()
                    else:
                        with self.lock:
                            self.refused += 1
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass     # killed under us: that is the point
            finally:
                s.close()


def sink_main(conn, path):
    """The next hop, in a process of its own (its threads must not wait for
    the senders' interpreter lock between accepting a message and replying):
    one line "token rcpt..." per accepted message, taken down before the 250
    is sent and appended to path by a writer thread within SINK_FLUSH
    seconds. Commands from conn: ("tempfail", at, reply), ("accept",),
    ("flush",), ("stop",).

    The next hop's decision to accept and its 250 are kept close, as in a
    real MTA (commit, then reply): a kill of mtad between the two is counted
    as mtad's duplicate (RFC 1047's window), so the harness must not widen
    that window itself. A file write there releases the interpreter lock,
    and with twenty sessions in one interpreter on a busy machine the 250
    then waited for other sessions' turns (a 5 ms switch interval each);
    hence the note in memory, the writer thread and a shorter interval."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    from nexthop import NextHop

    sys.setswitchinterval(0.0005)
    out = open(path, "a")
    lock = threading.Lock()
    pending = []
    done = threading.Event()

    def flush():
        with lock:
            lines = list(pending)
            del pending[:]
        if lines:
            out.write("".join(lines))
            out.flush()

    def writer():
        while not done.wait(SINK_FLUSH):
            flush()

    class Sink(NextHop):
        def _record(self, msg):
            mo = TOKEN_RE.search(msg.data)
            line = "%s %s\n" % (mo.group(1).decode() if mo else "-", " ".join(msg.rcpts))
            with lock:
                pending.append(line)

    wt = threading.Thread(target=writer, daemon=True)
    wt.start()
    nh = Sink("127.0.0.1", 0, name="sink.soak").start()
    conn.send(nh.port)
    while True:
        cmd = conn.recv()
        if cmd[0] == "tempfail":
            nh.tempfail(cmd[1], reply=cmd[2])
        elif cmd[0] == "accept":
            nh.accept()
        elif cmd[0] == "flush":
            flush()
        elif cmd[0] == "stop":
            nh.stop()
            done.set()
            wt.join(10)
            flush()
            out.close()
            conn.send("stopped")
            return
        conn.send("ok")


class SinkProcess:
    """Handle on sink_main() in a child process; deliveries() reads its file."""

    def __init__(self, path):
        import multiprocessing
        self.path = path
        self.conn, child = multiprocessing.Pipe()
        self.proc = multiprocessing.Process(target=sink_main, args=(child, path), daemon=True)
        self.proc.start()
        if not self.conn.poll(30):
            raise RuntimeError("the sink process did not start")
        self.port = self.conn.recv()

    def call(self, *cmd):
        self.conn.send(cmd)
        if not self.conn.poll(30):
            raise RuntimeError("the sink process does not answer")
        return self.conn.recv()

    def stop(self):
        try:
            self.call("stop")
        except (OSError, EOFError, RuntimeError):
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)

    def deliveries(self):
        """(token, rcpt) -> number of times the next hop accepted it."""
        count = collections.Counter()
        try:
            with open(self.path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 2 or not line.endswith("\n"):
                        continue
                    for r in parts[1:]:
                        count[(parts[0], r)] += 1
        except FileNotFoundError:
            pass
        return count


def logged_sent(m):
    """(queue id, rcpt) -> "status=sent" lines in m's mail log."""
    count = collections.Counter()
    for mo in SENT_RE.finditer(m.maillog()):
        count[(mo.group(1), mo.group(2))] += 1
    return count


def tally(acked, sink, m):
    """The phase's figures. A duplicate whose first delivery mtad had logged as
    sent before the kill is "after_250_read" (mtad knew, and its "delivered"
    record did not survive or came too late); otherwise the kill
    came between the next hop's 250 and mtad's reading of it, a window SMTP
    itself leaves open (RFC 1047), "before_250_read"."""
    sink.call("flush")          # every note taken so far is in the file
    got = sink.deliveries()
    sent = logged_sent(m)
    lost = sorted(k for k in acked if got.get(k, 0) == 0)
    dups = after = 0
    for k, n in got.items():
        if n < 2:
            continue
        dups += n - 1
        qid = acked.get(k)
        if qid is not None and sent.get((qid, k[1]), 0) >= 2:
            after += min(n - 1, sent[(qid, k[1])] - 1)
    return {"acknowledged": len(acked), "found": len(acked) - len(lost), "lost": len(lost),
            "duplicates": dups, "duplicates_after_250_read": after,
            "duplicates_before_250_read": dups - after,
            "delivered_unacknowledged": sum(1 for k in got if k not in acked),
            "lost_ids": sorted({acked[k] for k in lost})[:20]}


def drain(m, acked, sink, what):
    """Start m, wait for every acknowledged recipient and an empty queue, SIGTERM."""
    from conftest import wait_until
    m.start()

    t0 = last_t = time.monotonic()
    last = None
    while True:
        got = sink.deliveries()
        missing = sum(1 for k in acked if not got.get(k, 0))
        now = time.monotonic()
        if missing == 0:
            break
        if missing != last:
            last, last_t = missing, now
        if now - last_t > DRAIN_STALL or now - t0 > DRAIN_MAX:
            raise RuntimeError("%s: %d acknowledged recipient(s) still not delivered after %.0f s "
                               "(none for the last %.0f s)" % (what, missing, now - t0,
                                                               now - last_t))
        time.sleep(1.0)     # a poll: reading the next hop's file costs a moment per pass
    wait_until(lambda: not m.queue_files(), 60, interval=0.2, what="%s: an empty queue" % what)
    rc = m.stop(signal.SIGTERM, timeout=60)
    if rc != 0:
        raise RuntimeError("%s: mtad exit status %s on SIGTERM: %s" % (what, rc, m.read_stderr()[-2000:]))


def workdir(tmp, name):
    """tmp/name, made first: Mtad opens the directories above it to mail_owner."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    return d


def mtad_conf(sink):
    return {"smart_relay": "[127.0.0.1]:%d" % sink.port, "retry_min_backoff": "1s",
            "retry_max_backoff": "2s", "smtp_connect_timeout": "3s"}


def phase_kill(args, tmp, Mtad):
    d = workdir(tmp, "kill")
    sink = SinkProcess(os.path.join(d, "sink.txt"))
    m = None
    try:
        m = Mtad(d, mtad_conf(sink))
        acked = {}
        t0 = time.monotonic()
        for cycle in range(args.cycles):
            m.start()
            snd = Senders(m.smtp_port, args.senders, 600, "k%d" % cycle).start()
            time.sleep(args.seconds)     # the load's duration, not a synchronisation
            m.kill9()
            snd.stop()
            acked.update(snd.acked)
            if (cycle + 1) % 10 == 0:
                print("  kill cycle %d/%d: %d acknowledged, %d delivered, %.0f s" % (
                    cycle + 1, args.cycles, len(acked), sum(sink.deliveries().values()),
                    time.monotonic() - t0), flush=True)
        drain(m, acked, sink, "kill cycles")
        res = tally(acked, sink, m)
        res["kills"] = args.cycles
        return res
    finally:
        if m is not None and m.proc is not None and m.proc.poll() is None:
            m.kill9()       # a failed phase leaves no daemon behind
        sink.stop()


def phase_disk(args, tmp, Mtad):
    if os.geteuid() != 0:
        return {"skipped": "not root: cannot mount a tmpfs"}
    d = workdir(tmp, "disk")
    sink = SinkProcess(os.path.join(d, "sink.txt"))
    m = Mtad(d, mtad_conf(sink))
    os.makedirs(m.data_dir, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % args.disk_mb,
                        "tmpfs", m.data_dir], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        sink.stop()
        return {"skipped": "mount tmpfs: " + (p.stderr.strip() or "failed")}
    try:
        sink.call("tempfail", "MAIL", "451 4.3.0 Not now")
        acked, refused, full_seen = {}, 0, 0
        for cycle in range(args.disk_cycles):
            m.start()
            snd = Senders(m.smtp_port, args.senders, 16000, "d%d" % cycle).start()
            deadline = time.monotonic() + 60
            # push until mtad refuses (the disk guard), then a moment more
            while snd.refused == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            if snd.refused:
                full_seen += 1
            time.sleep(1.0)
            m.kill9()
            snd.stop()
            acked.update(snd.acked)
            refused += snd.refused
            st = os.statvfs(m.data_dir)
            print("  full-disk cycle %d/%d: %d acknowledged, %d refused, %.1f %% free" % (
                cycle + 1, args.disk_cycles, len(acked), refused,
                100.0 * st.f_bavail / st.f_blocks), flush=True)
        sink.call("accept")
        drain(m, acked, sink, "full disk")
        res = tally(acked, sink, m)
        res["refused"] = refused
        res["cycles_that_filled_the_disk"] = full_seen
        return res
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.kill9()
        sink.stop()
        subprocess.run(["umount", "-l", m.data_dir], capture_output=True, timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--disk-cycles", type=int, default=3)
    ap.add_argument("--disk-mb", type=int, default=16)
    ap.add_argument("--mtad", default=os.path.join(ROOT, "build", "mtad"))
    ap.add_argument("--report")
    args = ap.parse_args()
    os.environ["MTAD_BIN"] = os.path.abspath(args.mtad)
    from conftest import Mtad          # reads MTAD_BIN
    tmp = tempfile.mkdtemp(prefix="mtad-soak.")
    t0 = time.monotonic()
    ok = False
    try:
        print("soak: %d kill -9 cycles of %.1f s, %d senders, %s" % (
            args.cycles, args.seconds, args.senders, args.mtad), flush=True)
        res = {"kill_cycles": phase_kill(args, tmp, Mtad)}
        print("soak: full-disk phase, %d MiB tmpfs, %d cycles" % (args.disk_mb, args.disk_cycles),
              flush=True)
        res["full_disk"] = phase_disk(args, tmp, Mtad)
        tot = collections.Counter()
        for r in res.values():
            for k in ("acknowledged", "found", "lost", "duplicates", "duplicates_after_250_read",
                      "duplicates_before_250_read", "delivered_unacknowledged"):
                tot[k] += r.get(k, 0)
        res["total"] = dict(tot)
        res["seconds"] = round(time.monotonic() - t0)
        for name in ("kill_cycles", "full_disk", "total"):
            r = res[name]
            if "skipped" in r:
                print("%-12s skipped: %s" % (name, r["skipped"]))
                continue
            print("%-12s acknowledged %d  found %d  lost %d  duplicates %d (%.3f %%: %d after "
                  "mtad read the 250, %d before)  delivered-unacknowledged %d%s%s" % (
                      name, r["acknowledged"], r["found"], r["lost"], r["duplicates"],
                      100.0 * r["duplicates"] / max(1, r["acknowledged"]),
                      r["duplicates_after_250_read"], r["duplicates_before_250_read"],
                      r["delivered_unacknowledged"],
                      "  refused %d" % r["refused"] if "refused" in r else "",
                      "  %.2f duplicates per kill" % (r["duplicates"] / r["kills"])
                      if r.get("kills") else ""))
            if r.get("lost_ids"):
                print("             lost queue ids: %s" % " ".join(r["lost_ids"]))
        print("soak: %d s" % res["seconds"])
        if args.report:
            with open(args.report, "w") as f:
                json.dump(res, f, indent=1)
        ok = tot["lost"] == 0 and tot["duplicates"] * 1000 < tot["acknowledged"]
    finally:
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("soak: FAILED; files kept in %s" % tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
