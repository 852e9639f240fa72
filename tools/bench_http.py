#!/usr/bin/env python3
"""Measure the HTTP API's cost and speed (issue 5's closing note).

    python3 tools/bench_http.py accept [--runs 2] [--messages 5000]
        smtp-source -s 50 -m N -l 5120 against mtad (next hop: a local
        smtp-sink), alternately with and without a poller that GETs
        /api/queue and /metrics every 100 ms; prints the accept rates.

    python3 tools/bench_http.py queue [--messages 100000]
        fills the queue with N messages that stay (next hop [127.0.0.1]:1,
        where nothing listens), then times /api/queue pages, filters,
        /api/stats, /metrics and /api/queue/ID.

Runs build/mtad (or $MTAD_BIN) on loopback ports in a temporary directory;
needs smtp-source and smtp-sink (Debian's postfix package). Traffic stays
on 127.0.0.1; every loop is bounded.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MTAD = os.environ.get("MTAD_BIN", os.path.join(ROOT, "build", "mtad"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


class Daemon:
    def __init__(self, tmp, relay):
        self.tmp = tmp
        self.smtp = free_port()
        self.ui = free_port()
        os.chmod(tmp, 0o755)       # mtad runs as nobody after binding
        self.conf = os.path.join(tmp, "mtad.conf")
        with open(self.conf, "w") as f:
            f.write("data_dir = %s/data\nsmtp_listen = 127.0.0.1:%d\nui_address = 127.0.0.1\n"
                    "ui_port = %d\nsmtpd_trusted_networks = 127.0.0.0/8\nhostname = bench.test\n"
                    "dns_servers = 127.0.0.1:1\nsmart_relay = %s\nsmtpd_max_sessions = 10000\n"
                    "mail_owner = nobody\n"
                    % (tmp, self.smtp, self.ui, relay))
        self.err = open(os.path.join(tmp, "stderr"), "wb")
        self.proc = subprocess.Popen([MTAD, "-c", self.conf], stdout=self.err, stderr=self.err)
        wait_port(self.smtp)
        wait_port(self.ui)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def get(port, path, timeout=30):
    t0 = time.perf_counter()
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def smtp_source(port, n, size, sessions=50, extra=()):
    t0 = time.monotonic()
    p = subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size),
                        "-f", "bench@source.test", "-t", "rcpt@dest.test", *extra,
                        "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise SystemExit("smtp-source failed: " + p.stderr)
    return time.monotonic() - t0


class Poller(threading.Thread):
    """GET /api/queue and /metrics every 100 ms (each), until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_ev = threading.Event()
        self.lat = []

    def run(self):
        # One keep-alive connection, as a dashboard or Prometheus would use.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop_ev.is_set():
            t = time.monotonic()
            for path in ("/api/queue?per_page=50", "/metrics"):
                try:
                    t0 = time.perf_counter()
                    conn.request("GET", path)
                    conn.getresponse().read()
                    self.lat.append(time.perf_counter() - t0)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.stop_ev.wait(max(0, 0.1 - (time.monotonic() - t)))
        conn.close()


def cmd_accept(args):
    sink_port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % sink_port, "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(sink_port)
    results = {"off": [], "on": []}
    cpu = {"off": [], "on": []}
    polls = []
    try:
        for run in range(args.runs):
            for mode in ("off", "on"):
                tmp = tempfile.mkdtemp(prefix="mtad-bench-", dir=args.dir)
                d = Daemon(tmp, "[127.0.0.1]:%d" % sink_port)
                poller = Poller(d.ui) if mode == "on" else None
                if poller:
                    poller.start()
                c0 = cpu_seconds(d.proc.pid)
                secs = smtp_source(d.smtp, args.messages, 5120)
                used = cpu_seconds(d.proc.pid) - c0
                if poller:
                    poller.stop_ev.set()
                    poller.join(5)
                    polls.extend(poller.lat)
                d.stop()
                cpu[mode].append(used)
                shutil.rmtree(tmp, ignore_errors=True)
                rate = args.messages / secs
                results[mode].append(rate)
                print("run %d polling %-3s %6.0f msg/s (%.1f s, mtad CPU %.2f s)"
                      % (run + 1, mode, rate, secs, used), flush=True)
    finally:
        sink.terminate()
        sink.wait(10)
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    print("median accept rate: without polling %.0f msg/s, with polling %.0f msg/s (%+.1f %%)"
          % (off, on, 100.0 * (on - off) / off))
    print("median mtad CPU per run: without polling %.2f s, with polling %.2f s"
          % (statistics.median(cpu["off"]), statistics.median(cpu["on"])))
    if polls:
        polls.sort()
        print("poll latency during the load: median %.1f ms, p95 %.1f ms, max %.1f ms (%d requests)"
              % (1000 * statistics.median(polls), 1000 * polls[int(len(polls) * 0.95)],
                 1000 * polls[-1], len(polls)))


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(port, path, pid, n=40):
    lat = []
    body = b""
    c0 = cpu_seconds(pid)
    for _ in range(n):
        t, body = get(port, path)
        lat.append(t)
    cpu = (cpu_seconds(pid) - c0) / n
    lat.sort()
    return statistics.median(lat) * 1000, lat[int(len(lat) * 0.95) - 1] * 1000, len(body), cpu * 1000


def cmd_queue(args):
    tmp = tempfile.mkdtemp(prefix="mtad-bench-", dir=args.dir)
    d = Daemon(tmp, "[127.0.0.1]:1")
    try:
        t0 = time.monotonic()
        left = args.messages
        while left > 0:
            n = min(left, 20000)
            smtp_source(d.smtp, n, 512, sessions=50)
            left -= n
        print("queued %d messages in %.0f s" % (args.messages, time.monotonic() - t0), flush=True)
        _, body = get(d.ui, "/api/stats")
        stats = json.loads(body)
        print("queue: %d messages, %d KB" % (stats["queue"]["messages"], stats["queue"]["kilobytes"]))
        first = json.loads(get(d.ui, "/api/queue?per_page=1")[1])["items"][0]["id"]
        rows = [
            ("/api/queue (page 1, 50 rows)", "/api/queue?page=1&per_page=50"),
            ("/api/queue (page 1000, 50 rows)", "/api/queue?page=1000&per_page=50"),
            ("/api/queue (newest first)", "/api/queue?order=desc&per_page=50"),
            ("/api/queue (500 rows)", "/api/queue?per_page=500"),
            ("/api/queue?state=deferred", "/api/queue?state=deferred&per_page=50"),
            ("/api/queue?q=<one id>", "/api/queue?q=" + first),
            ("/api/queue?sender=bench", "/api/queue?sender=bench&per_page=50"),
            ("/api/queue?domain=nomatch.test", "/api/queue?domain=nomatch.test"),
            ("/api/queue/ID (detail)", "/api/queue/" + first),
            ("/api/stats", "/api/stats"),
            ("/metrics", "/metrics"),
        ]
        print("%-36s %10s %10s %12s %10s" % ("request", "median ms", "p95 ms", "mtad CPU ms", "bytes"))
        for name, path in rows:
            med, p95, size, cpu = timed(d.ui, path, d.proc.pid)
            print("%-36s %10.1f %10.1f %12.1f %10d" % (name, med, p95, cpu, size), flush=True)
        rss = 0
        with open("/proc/%d/status" % d.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        print("mtad resident memory: %.0f MB" % (rss / 1024))
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("accept", "queue"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--messages", type=int)
    ap.add_argument("--dir", default=None, help="where the data_dir goes (default: $TMPDIR)")
    args = ap.parse_args()
    if args.what == "accept":
        args.messages = args.messages or 5000
        cmd_accept(args)
    else:
        args.messages = args.messages or 100000
        cmd_queue(args)


if __name__ == "__main__":
    sys.exit(main())
