#!/usr/bin/env python3
"""bench/relay_bench.py - relay rate and client CPU per message through a
smart relay that demands SMTP AUTH over STARTTLS: mtad (with and without its
TLS session cache) against Postfix configured the same way as a relay
client (smtp_sasl_auth_enable, smtp_tls_security_level = encrypt, its TLS
session cache), in one run, on loopback.

    sudo bench/relay_bench.py                # after make; N=2000 messages each
    N=500 C=20 SIZE=4096 T=300 sudo -E bench/relay_bench.py

The relay is a private Postfix (tests/e2e/postfix_relay.py: Cyrus SASL with
sasldb, AUTH only after STARTTLS, TLS 1.2+ with a session cache) that passes
everything on to smtp-sink. Each client gets the same N messages from
smtp-source (C sessions at once, plain SMTP on loopback) and relays them to
the relay with AUTH PLAIN over STARTTLS. Rate: messages the relay accepted
(its "client=" log lines) per second, from the first injection to the N-th
acceptance. CPU: utime+stime of the client's processes (mtad; for Postfix
every process of the instance: its children now, plus what its master
reaped) per message. The relay's own CPU is not counted. Everything is
bounded by N and T; the private instances are stopped by their master's PID.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from certs import CertAuthority          # noqa: E402
from postfix_relay import PostfixRelay, available   # noqa: E402
from private_postfix import PrivatePostfix, free_port, stop_master   # noqa: E402

N = int(os.environ.get("N", "2000"))
C = int(os.environ.get("C", "20"))
SIZE = int(os.environ.get("SIZE", "4096"))
T = float(os.environ.get("T", "300"))
MTAD = os.environ.get("MTAD", os.path.join(ROOT, "build", "mtad"))
USER, PASSWORD = "benchuser", "bench-Pa55"
HZ = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("relay_bench:", *a, file=sys.stderr, flush=True)


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def ticks(pid, reaped=False):
    """utime+stime of pid (and, with reaped, what it collected from its children)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    t = int(v[11]) + int(v[12])
    if reaped:
        t += int(v[13]) + int(v[14])
    return t


def tree_ticks(master):
    """a Postfix instance: its live children plus what the master reaped."""
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True,
                          text=True).stdout.split()
    return ticks(master, reaped=True) + sum(ticks(int(k)) for k in kids)


def accepted(relay):
    return len(re.findall(r"postfix/smtpd\[\d+\]: [0-9A-Z]+: client=", relay.log()))


def run(name, port, cpu, relay):
    """inject N messages at port; wait until the relay has accepted them all."""
    base = accepted(relay)
    c0 = cpu()
    t0 = time.monotonic()
    src = subprocess.Popen(["smtp-source", "-s", str(C), "-m", str(N), "-l", str(SIZE),
                            "-f", "bench@src.example", "-t", "rcpt@dest.example",
                            "127.0.0.1:%d" % port], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    got = 0
    while time.monotonic() - t0 < T:
        got = accepted(relay) - base
        if got >= N:
            break
        time.sleep(0.2)
    t1 = time.monotonic()
    c1 = cpu()
    try:
        src.wait(timeout=max(1, T - (t1 - t0)))
    except subprocess.TimeoutExpired:
        src.kill()
        src.wait()
    rate = got / (t1 - t0) if t1 > t0 else 0
    ms = 1000.0 * (c1 - c0) / HZ / got if got else 0
    log("%-16s relayed %d/%d in %.1fs: %.0f msg/s, client CPU %.3f ms/msg" %
        (name, got, N, t1 - t0, rate, ms))
    return rate, ms, got


# the client instance's main.cf lines, after private_postfix.py's base ones
CLIENT_MAIN = """\
myhostname = client.test
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay}
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = static:{user}@relay.test:{pw}
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtp_tls_security_level = encrypt
smtp_tls_CAfile = {ca}
smtp_tls_session_cache_database = btree:${{data_directory}}/smtp_scache
default_destination_concurrency_limit = 20
default_process_limit = 200
"""


def postfix_client(d, relay_port, ca):
    """A private Postfix relaying to the relay with AUTH over TLS: (its port, its master's PID)"""
    pf = PrivatePostfix(d, {"smtp": ""}, CLIENT_MAIN.format(
        relay=relay_port, user=USER, pw=PASSWORD, ca=ca).splitlines()).start()
    return pf.ports["smtp"], pf.master_pid


def mtad_client(d, relay_port, ca, cache):
    os.makedirs(os.path.join(d, "keys"), exist_ok=True)
    with open(os.path.join(d, "keys", "relay.pw"), "w") as f:
        f.write(PASSWORD + "\n")
    port, ui = free_port(), free_port()
    conf = os.path.join(d, "mtad.conf")
    with open(conf, "w") as f:
        f.write("data_dir = %s/data\nsmtp_listen = 127.0.0.1:%d\nsmtps_listen =\n"
                "ui_address = 127.0.0.1\nui_port = %d\nsmtpd_trusted_networks = 127.0.0.0/8\n"
                "hostname = client.test\nmail_owner = nobody\nkey_dir = %s/keys\n"
                "smart_relay = [127.0.0.1]:%d\nsmart_relay_tls = encrypt\n"
                "smart_relay_username = %s@relay.test\nsmart_relay_password_file = relay.pw\n"
                "smtp_tls_session_cache = %s\ndns_servers = 127.0.0.1:1\n"
                % (d, port, ui, d, relay_port, USER, "yes" if cache else "no"))
    env = dict(os.environ, SSL_CERT_FILE=ca)
    p = subprocess.Popen([MTAD, "-c", conf], stdout=open(os.path.join(d, "mtad.out"), "w"),
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    wait_port(port)
    return port, p


def main():
    if not available() or not shutil.which("smtp-source") or not shutil.which("smtp-sink"):
        sys.exit("relay_bench: needs root, postfix (smtp-source, smtp-sink) and Cyrus SASL")
    if not os.access(MTAD, os.X_OK):
        sys.exit("relay_bench: no %s: run make" % MTAD)
    work = tempfile.mkdtemp(prefix="mtad-relaybench.", dir="/var/tmp")
    os.chmod(work, 0o755)
    sink = relay = mt = None
    pf_master = None
    try:
        sink_port = free_port()
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % sink_port, "1024"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(sink_port)
        ca = CertAuthority(os.path.join(work, "ca"))
        key, cert = ca.issue(os.path.join(work, "tls"), "relay", cn="relay.test")
        relay = PostfixRelay(os.path.join(work, "relay"), cert, key, sink_port,
                             {USER: PASSWORD}).start()
        os.chmod(ca.cert, 0o644)
        log("N=%d C=%d size=%d T=%.0fs; %s; postfix %s; relay: Postfix, AUTH PLAIN after "
            "STARTTLS (TLS 1.3)" % (N, C, SIZE, T, subprocess.run(
                [MTAD, "-V"], capture_output=True, text=True).stdout.strip(),
                subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True,
                               text=True).stdout.strip()))
        results = {}
        pport, pf_master = postfix_client(os.path.join(work, "client-postfix"),
                                          relay.starttls_port, ca.cert)
        results["postfix"] = run("postfix", pport, lambda: tree_ticks(pf_master), relay)
        stop_master(pf_master)
        pf_master = None
        for cache in (False, True):
            name = "mtad cache=%s" % ("yes" if cache else "no")
            mport, mt = mtad_client(os.path.join(work, "client-mtad-%d" % cache),
                                    relay.starttls_port, ca.cert, cache)
            results[name] = run(name, mport, lambda: ticks(mt.pid), relay)
            mt.send_signal(signal.SIGTERM)
            mt.wait(timeout=60)
            mt = None
        pr, pc, _ = results["postfix"]
        print("%-16s %10s %12s %14s %10s" % ("client", "msg/s", "vs postfix", "cpu ms/msg",
                                             "vs postfix"))
        for name, (r, c, got) in results.items():
            print("%-16s %10.0f %11.2fx %14.3f %9.2fx%s" % (
                name, r, r / pr if pr else 0, c, c / pc if pc else 0,
                "" if got >= N else "  (only %d of %d within T)" % (got, N)))
    finally:
        if mt is not None:
            mt.send_signal(signal.SIGTERM)
            mt.wait(timeout=60)
        if pf_master is not None:
            stop_master(pf_master)
        if relay is not None:
            relay.stop()
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
