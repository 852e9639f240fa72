#!/usr/bin/env python3
"""big_rss.py - peak memory of mtad while S sessions each send one large message.

Starts build/mtad (or $MTAD) on loopback with smtp-sink as its smart relay,
runs `smtp-source -s S -m S -l SIZE` (one message per session, all at once),
samples the daemon's RSS every 50 ms until the sink has every message, and
prints the peak. Run from the project root:

    python3 bench/big_rss.py                 # 50 sessions x 10 MB
    python3 bench/big_rss.py -s 50 --size 1048576
"""
import argparse
import os
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-s", type=int, default=50, help="sessions, one message each")
    ap.add_argument("--size", type=int, default=10 * 1024 * 1024, help="body bytes")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    mtad = os.environ.get("MTAD", "build/mtad")
    d = tempfile.mkdtemp(prefix="bigrss.", dir="/var/tmp")
    os.chmod(d, 0o755)
    os.mkdir(os.path.join(d, "q"))
    sp, mp, up = free_port(), free_port(), free_port()
    with open(os.path.join(d, "mtad.conf"), "w") as f:
        f.write("data_dir = %s/q\nsmtp_listen = 127.0.0.1:%d\nsmart_relay = [127.0.0.1]:%d\n"
                "smtpd_trusted_networks = 127.0.0.0/8\nui_port = %d\nui_address = 127.0.0.1\n"
                "message_size_limit = %d\nssl_disabled = yes\n" % (d, mp, sp, up, a.size * 2))
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", "127.0.0.1:%d" % sp, "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = subprocess.Popen([mtad, "-c", os.path.join(d, "mtad.conf")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", mp), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("mtad did not start")
                time.sleep(0.05)
        base = rss_kib(m.pid)
        t0 = time.monotonic()
        src = subprocess.Popen(["smtp-source", "-s", str(a.s), "-m", str(a.s), "-l", str(a.size),
                                "127.0.0.1:%d" % mp], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        peak = base
        got = 0
        buf = ""
        os.set_blocking(sink.stdout.fileno(), False)
        while time.monotonic() - t0 < a.timeout:
            peak = max(peak, rss_kib(m.pid))
            try:
                chunk = sink.stdout.read()
            except (BlockingIOError, TypeError):
                chunk = None
            if chunk:
                buf += chunk
                nums = [int(x) for x in buf.replace("\r", " ").split("mesg=")[1:]
                        for x in [x.split()[0] if x.split() else "0"] if x.isdigit()]
                got = max(nums) if nums else got
            if got >= a.s and src.poll() is not None:
                break
            time.sleep(0.05)
        t = time.monotonic() - t0
        src.wait(timeout=30)
        print("%d sessions x %d bytes: relayed %d in %.1f s; mtad RSS %d MiB idle, peak %d MiB"
              % (a.s, a.size, got, t, base // 1024, peak // 1024))
    finally:
        m.terminate()
        sink.terminate()
        m.wait(timeout=30)
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
