"""PROXY protocol on the SMTP listeners (SPEC §4, §11.4): a header is
believed only from smtpd_proxy_networks, on smtp_listen and smtps_listen
(before the TLS handshake); everyone else is a direct client; a header must
come whole within 10 s; sessions waiting for it count against the
per-address limit. Tested with raw headers and with a real HAProxy
(TCP mode, send-proxy-v2) run as a private process on loopback ports.
"""
import os
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import free_port, port_open, wait_until
from test_smtp_lib import Client, ServerClosed, queue_file, queued_id, transaction, committed
from tls_fixture import tls_mtad

LB = "127.0.0.1"            # where mtad sees the balancer (and HAProxy) connect from
ELSEWHERE = "127.0.0.9"     # a client that is not a balancer
BASE = {
    "smtpd_trusted_networks": "10.0.0.0/8",
    "smtpd_proxy_protocol": "haproxy",
    "smtpd_proxy_networks": LB,
}


def proxy_v2(src, sport, dst="127.0.0.1", dport=25):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr


def proxied(port, header, source=LB):
    c = Client(port, greet=False, source=source)
    c.send(header)
    c.greeting = c.reply()
    return c


# --- whose header is believed ------------------------------------------------------

def test_v2_header_from_a_non_proxy_address_is_not_believed(mtad_factory):
    """127.0.0.9 is not a balancer: it is greeted at once as itself, its
    "header" is just bytes (the v2 signature even says QUIT), and the
    trusted address it claims opens nothing."""
    m = mtad_factory(conf=BASE)
    c = Client(m.smtp_port, source=ELSEWHERE)
    assert c.greeting[0] == 220                  # no header awaited
    c.send(proxy_v2("10.9.8.7", 5555))
    codes = []
    while True:
        code, _ = c.reply()
        codes.append(code)
        if code == 221:
            break
    assert set(codes[:-1]) <= {500, 502}, codes
    assert c.closed()
    c = Client(m.smtp_port, source=ELSEWHERE)
    assert c.cmd("PROXY TCP4 10.9.8.7 127.0.0.1 40000 25")[0] in (500, 502)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    assert c.cmd("RCPT TO:<r@example.com>") == \
        (554, ["5.7.1 <r@example.com>: Relay access denied"])
    wait_until(lambda: "RCPT from unknown[127.0.0.9]" in m.maillog(), 10, what="reject line")
    assert "10.9.8.7" not in m.maillog()
    assert committed(m) == []


def test_header_from_a_proxy_network_is_believed(mtad_factory):
    m = mtad_factory(conf=BASE)
    c = proxied(m.smtp_port, proxy_v2("10.9.8.7", 5555))
    assert c.greeting[0] == 220
    c.expect("EHLO x", 250)
    qid = queued_id(transaction(c))              # 10.9.8.7 is trusted
    assert b"(unknown [10.9.8.7])" in queue_file(m, qid)
    wait_until(lambda: "connect from unknown[10.9.8.7]" in m.maillog(), 10)


# --- the header deadline ---------------------------------------------------------------

def test_no_header_within_10s_closes(mtad_factory):
    m = mtad_factory(conf=dict(BASE, smtpd_timeout="300s"))
    c = Client(m.smtp_port, greet=False, source=LB)
    t0 = time.monotonic()
    assert c.closed(timeout=20), "still open 20 s after connect without a header"
    assert time.monotonic() - t0 >= 9.5
    assert c.buf == b""                          # no greeting, no reply
    wait_until(lambda: "warning: haproxy read: no complete PROXY header from [127.0.0.1]"
               in m.maillog(), 10, what="the deadline line")


def test_header_dripped_slowly_closes_at_the_deadline(mtad_factory):
    """The 10 s are for the whole header, not between its bytes."""
    m = mtad_factory(conf=dict(BASE, smtpd_timeout="300s"))
    c = Client(m.smtp_port, greet=False, source=LB)
    header = b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 25\r\n"
    t0 = time.monotonic()
    closed = False
    for b in header[:-1]:                        # one byte a second, never the last
        try:
            c.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if c.closed(timeout=1.0):
            closed = True
            break
        if time.monotonic() - t0 > 20:
            break
    assert closed, "a header dripped for %.0f s kept the session" % (time.monotonic() - t0)
    assert c.buf == b""


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 10.9.8.7\r\n",
    b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
    b"HELO x\r\n",
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x31\x00\x00",           # v2, UDP
    b"PROXY " + b"x" * 200 + b"\r\n",
])
def test_malformed_header_closes(mtad_factory, header):
    m = mtad_factory(conf=BASE)
    c = Client(m.smtp_port, greet=False, source=LB)
    c.send(header)
    assert c.closed()
    assert c.buf == b""
    wait_until(lambda: "haproxy read: bad or unsupported PROXY header from [127.0.0.1]"
               in m.maillog(), 10, what="the bad-header line")


# --- waiting sessions count against the per-address limit --------------------------------

def test_waiting_sessions_count_against_the_balancer(mtad_factory):
    m = mtad_factory(conf=dict(BASE, smtpd_client_connection_limit="3"))
    waiting = [Client(m.smtp_port, greet=False, source=LB) for _ in range(3)]
    # all three are counted while they wait: the fourth is refused at once
    c = Client(m.smtp_port, greet=False, source=LB)
    code, text = c.reply()
    assert code == 421 and text[0].startswith("4.7.0 mx.test.example Error: too many "
                                              "connections from 127.0.0.1"), (code, text)
    assert c.closed()
    wait_until(lambda: "Connection concurrency limit exceeded: 4 from unknown[127.0.0.1]"
               in m.maillog(), 10, what="the limit line")
    # a header moves the count to the real client: room for one more waiting session
    w = waiting[0]
    w.send(b"PROXY TCP4 203.0.113.5 127.0.0.1 40000 25\r\n")
    assert w.reply()[0] == 220
    c = proxied(m.smtp_port, b"PROXY TCP4 203.0.113.6 127.0.0.1 40001 25\r\n")
    assert c.greeting[0] == 220
    # the clients behind the balancer have limits of their own
    same = [proxied(m.smtp_port, b"PROXY TCP4 203.0.113.5 127.0.0.1 4000%d 25\r\n" % i)
            for i in range(2)]
    assert all(s.greeting[0] == 220 for s in same)
    over = proxied(m.smtp_port, b"PROXY TCP4 203.0.113.5 127.0.0.1 40009 25\r\n")
    assert over.greeting[0] == 421 and "203.0.113.5" in over.greeting[1][0]


def test_direct_clients_are_limited_with_proxy_on(mtad_factory):
    """The 121st half-open session from one address is not greeted any more:
    a non-balancer is a direct client, counted from its first moment."""
    m = mtad_factory(conf=dict(BASE, smtpd_client_connection_limit="3"))
    held = [Client(m.smtp_port, source=ELSEWHERE) for _ in range(3)]
    assert all(h.greeting[0] == 220 for h in held)
    c = Client(m.smtp_port, greet=False, source=ELSEWHERE)
    code, text = c.reply()
    assert code == 421 and "127.0.0.9" in text[0], (code, text)


# --- SMTPS: the header comes before the TLS handshake --------------------------------------

def tls_client(m, sock):
    ctx = ssl.create_default_context(cafile=m.ca.cert)
    return ctx.wrap_socket(sock, server_hostname="mx.test.example")


def smtps_reply(s):
    buf = b""
    while not (buf.endswith(b"\r\n") and (len(buf.split(b"\r\n")[-2]) < 4 or
                                         buf.split(b"\r\n")[-2][3:4] == b" ")):
        chunk = s.recv(65536)
        if not chunk:
            raise ServerClosed(buf)
        buf += chunk
    return int(buf[:3]), buf


def test_smtps_reads_the_header_before_tls(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path, conf=BASE)
    raw = socket.socket()
    raw.settimeout(10)
    raw.bind((LB, 0))
    raw.connect(("127.0.0.1", m.smtps_port))
    raw.sendall(proxy_v2("10.9.8.7", 5555, dport=465))
    s = tls_client(m, raw)                       # handshake right behind the header
    assert smtps_reply(s)[0] == 220
    s.sendall(b"EHLO x\r\n")
    assert smtps_reply(s)[0] == 250
    s.sendall(b"MAIL FROM:<s@example.org>\r\n")
    assert smtps_reply(s)[0] == 250
    s.sendall(b"RCPT TO:<r@example.com>\r\n")
    assert smtps_reply(s)[0] == 250              # 10.9.8.7 is trusted
    s.sendall(b"QUIT\r\n")
    s.close()
    wait_until(lambda: "Anonymous TLS connection established from unknown[10.9.8.7]"
               in m.maillog(), 10, what="the TLS line with the client's address")


def test_smtps_from_elsewhere_is_direct(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path, conf=BASE)
    with smtplib.SMTP_SSL("127.0.0.1", m.smtps_port, timeout=10,
                          source_address=(ELSEWHERE, 0),
                          context=ssl.create_default_context(cafile=m.ca.cert)) as c:
        c.ehlo("x")
        c.mail("s@example.org")
        code, _ = c.rcpt("r@example.com")
        assert code == 554
    wait_until(lambda: "connect from unknown[127.0.0.9]" in m.maillog(), 10)


# --- a real HAProxy in front ---------------------------------------------------------------------

class Haproxy:
    """A private haproxy (TCP mode, send-proxy-v2) in the foreground; stopped by PID."""

    def __init__(self, tmp_path, routes):
        self.ports = {}
        lines = ["global", "    maxconn 200", "defaults", "    mode tcp",
                 "    timeout connect 5s", "    timeout client 30s", "    timeout server 30s"]
        for name, backend_port in routes.items():
            port = free_port()
            self.ports[name] = port
            lines += ["listen %s" % name, "    bind 127.0.0.1:%d" % port,
                      "    server mtad 127.0.0.1:%d send-proxy-v2" % backend_port]
        self.cfg = tmp_path / "haproxy.cfg"
        self.cfg.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.cfg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for port in self.ports.values():
            wait_until(lambda: self.proc.poll() is None and port_open("127.0.0.1", port), 10,
                       what="haproxy listening on %d" % port)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def haproxy_factory(tmp_path):
    made = []

    def make(routes):
        h = Haproxy(tmp_path, routes)
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop()


def test_behind_haproxy_smtp_and_smtps(mtad_factory, tmp_path, haproxy_factory):
    m = tls_mtad(mtad_factory, tmp_path,
                 conf=dict(BASE, smtpd_trusted_networks="127.0.0.7"))
    hp = haproxy_factory({"smtp": m.smtp_port, "smtps": m.smtps_port})
    ctx = ssl.create_default_context(cafile=m.ca.cert)
    # the trusted client 127.0.0.7 relays through the balancer, over SMTP (with
    # STARTTLS) and over SMTPS
    with smtplib.SMTP("127.0.0.1", hp.ports["smtp"], timeout=10,
                      source_address=("127.0.0.7", 0)) as c:
        c.starttls(context=ctx)
        c.sendmail("a@example.org", ["r@example.com"], b"Subject: via haproxy\r\n\r\nx\r\n")
    with smtplib.SMTP_SSL("127.0.0.1", hp.ports["smtps"], timeout=10,
                          source_address=("127.0.0.7", 0), context=ctx) as c:
        c.sendmail("a@example.org", ["r@example.com"], b"Subject: via haproxy\r\n\r\ny\r\n")
    wait_until(lambda: len(committed(m)) == 2, 10, what="two queued messages")
    # another client behind the same balancer is not trusted
    with smtplib.SMTP("127.0.0.1", hp.ports["smtp"], timeout=10,
                      source_address=("127.0.0.8", 0)) as c:
        c.ehlo("x")
        c.mail("a@example.org")
        assert c.rcpt("r@example.com")[0] == 554
    wait_until(lambda: "RCPT from unknown[127.0.0.8]" in m.maillog(), 10)
    log = m.maillog()
    assert log.count("connect from unknown[127.0.0.7]") >= 2, log
    assert "Anonymous TLS connection established from unknown[127.0.0.7]" in log
    assert "haproxy read" not in log
