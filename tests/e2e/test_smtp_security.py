"""Inbound SMTP security: relay control, routing tricks, SMTP smuggling,
the PROXY protocol, reload and shutdown (SPEC §4, §1).
"""
import os
import signal
import socket
import struct
import time

import pytest

from conftest import wait_until
from test_smtp_lib import Client, ServerClosed, queue_file, queued_id, transaction, committed

HOST = "mx.test.example"
UNTRUSTED = {"smtpd_trusted_networks": "10.0.0.0/8"}


def test_relay_denied_for_untrusted_client(mtad_factory):
    m = mtad_factory(conf=UNTRUSTED)
    c = Client(m.smtp_port)
    c.expect("EHLO client.example", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    assert c.cmd("RCPT TO:<r@example.com>") == (554, ["5.7.1 <r@example.com>: Relay access denied"])
    assert c.cmd("DATA") == (554, ["5.5.1 Error: no valid recipients"])
    c.expect("QUIT", 221)
    want = ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <r@example.com>: "
            "Relay access denied; from=<s@example.org> to=<r@example.com> proto=ESMTP "
            "helo=<client.example>")
    wait_until(lambda: want in m.maillog(), 10, what="the reject line")
    assert committed(m) == []


@pytest.mark.parametrize("rcpt", [
    "user%other.example@example.com",
    '"user@other.example"@example.com',
    "@relay.example:user@example.com",
    "@a.example,@b.example:user@example.com",
    "other.example!user@example.com",
    "user@[127.0.0.1]",
    "postmaster@localhost",
])
def test_routing_tricks_never_relay(mtad_factory, rcpt):
    m = mtad_factory(conf=UNTRUSTED)
    c = Client(m.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    code, _ = c.cmd("RCPT TO:<%s>" % rcpt)
    assert code in (501, 554), (rcpt, code)
    assert c.cmd("DATA")[0] >= 500


def test_routing_tricks_from_trusted_go_to_the_last_domain(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    c.expect("RCPT TO:<user%other.example@example.com>", 250)
    c.expect("RCPT TO:<@a.example,@b.example:routed@example.net>", 250)
    c.expect("DATA", 354)
    c.send("x\r\n.\r\n")
    raw = queue_file(mtad, queued_id(c.reply()))
    assert b"user%other.example@example.com" in raw
    assert b"routed@example.net" in raw
    assert b"a.example" not in raw and b"b.example" not in raw


SMUGGLE = [
    b"\n.\n",
    b"\r.\r",
    b"\r\n.\n",
    b"\n.\r\n",
    b"\r\n.\r",
    b"\r.\r\n",
    b"\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
]


@pytest.mark.parametrize("fake_end", SMUGGLE, ids=lambda b: repr(b))
def test_smuggling_is_never_a_second_transaction(mtad, fake_end):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    c.expect("RCPT TO:<r@example.com>", 250)
    c.expect("DATA", 354)
    smuggled = (b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.net>\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n")
    c.send(b"Subject: cover\r\n\r\ninnocent" + fake_end + smuggled + b".\r\n")
    code, lines = c.reply()
    if code == 250:
        # kept as data: one message that contains the fake commands
        raw = queue_file(mtad, queued_id((code, lines)))
        assert b"MAIL FROM:<admin@example.org>" in raw
    else:
        assert (code, lines) == (550, ["5.5.2 Error: bare <CR> or <LF> received"]) or \
            fake_end == b"\r\n\x00.\r\n", (code, lines)
    # nothing else is pending: the next reply is the NOOP's
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert len(committed(mtad)) <= 1
    for f in committed(mtad):
        assert b"victim@example.net" not in queue_file(mtad, f).split(b"cover")[0]


def test_smuggling_variants_are_rejected(mtad):
    """Every bare line end makes the message a 550, however it is split."""
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    for fake in SMUGGLE[:6]:
        c.expect("MAIL FROM:<s@example.org>", 250)
        c.expect("RCPT TO:<r@example.com>", 250)
        c.expect("DATA", 354)
        payload = b"a" + fake + b"MAIL FROM:<x@y.example>\r\n.\r\n"
        for i in range(len(payload)):     # one byte per write
            c.send(payload[i:i + 1])
        assert c.reply() == (550, ["5.5.2 Error: bare <CR> or <LF> received"]), fake
    assert c.cmd("NOOP")[0] == 250
    assert committed(mtad) == []


def test_dot_line_with_lf_only_does_not_end(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    c.expect("RCPT TO:<r@example.com>", 250)
    c.expect("DATA", 354)
    c.send(b"body\n.\n")
    c.s.settimeout(1)
    with pytest.raises(socket.timeout):
        c.reply()                    # still in DATA: no reply yet
    c.s.settimeout(10)
    c.send(b"\r\n.\r\n")
    assert c.reply()[0] == 550


# --- PROXY protocol ------------------------------------------------------------

def proxy_v2(src, sport):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addr = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 25)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr


def proxied(m, header):
    c = Client(m.smtp_port, greet=False)
    c.send(header)
    c.greeting = c.reply()
    return c


def test_proxy_v1_sets_the_client(mtad_factory):
    m = mtad_factory(conf=dict(UNTRUSTED, smtpd_proxy_protocol="haproxy",
                                     smtpd_proxy_networks="127.0.0.1"))
    c = proxied(m, b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 25\r\n")
    assert c.greeting[0] == 220
    c.expect("EHLO x", 250)
    qid = queued_id(transaction(c))       # 10.9.8.7 is trusted
    assert b"(unknown [10.9.8.7])" in queue_file(m, qid)
    wait_until(lambda: "connect from unknown[10.9.8.7]" in m.maillog(), 10)


def test_proxy_v2_untrusted_source(mtad_factory):
    m = mtad_factory(conf=dict(UNTRUSTED, smtpd_proxy_protocol="haproxy",
                                     smtpd_proxy_networks="127.0.0.1"))
    c = proxied(m, proxy_v2("192.0.2.44", 5555))
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    assert c.cmd("RCPT TO:<r@example.com>")[0] == 554
    wait_until(lambda: "RCPT from unknown[192.0.2.44]" in m.maillog(), 10)


def test_proxy_missing_header_closes(mtad_factory):
    m = mtad_factory(conf={"smtpd_proxy_protocol": "haproxy",
                           "smtpd_proxy_networks": "127.0.0.1"})
    c = Client(m.smtp_port, greet=False)
    c.send(b"EHLO x\r\n")
    assert c.closed()
    assert c.buf == b""               # no greeting, no reply
    c = proxied(m, b"PROXY UNKNOWN\r\n")
    assert c.greeting[0] == 220       # the socket's own peer (127.0.0.1) is used
    c.expect("EHLO x", 250)
    queued_id(transaction(c))


# --- reload and shutdown ----------------------------------------------------------

def test_sighup_applies_new_settings(mtad_factory):
    mtad = mtad_factory(start=False)
    # mtad re-reads its file as mail_owner: let it through pytest's 0700 directories
    d = os.path.dirname(mtad.conf_path)
    while d not in ("/", "/tmp", ""):
        os.chmod(d, os.stat(d).st_mode | 0o011)
        d = os.path.dirname(d)
    mtad.start()
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    mtad.conf["hostname"] = "mx2.test.example"
    mtad.conf["smtpd_trusted_networks"] = "10.0.0.0/8"
    mtad.write_conf()
    os.chmod(mtad.conf_path, 0o644)
    mtad.proc.send_signal(signal.SIGHUP)

    def new_greeting():
        d = Client(mtad.smtp_port)
        g = d.greeting
        d.close()
        return g == (220, ["mx2.test.example ESMTP mtad"])
    wait_until(new_greeting, 10, what="the new hostname in the greeting")
    # the old session sees the new relay rules as well
    c.expect("MAIL FROM:<s@example.org>", 250)
    assert c.cmd("RCPT TO:<r@example.com>")[0] == 554
    c.expect("QUIT", 221)


def test_sigterm_idle_session_gets_421(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c2 = Client(mtad.smtp_port)
    c2.expect("EHLO y", 250)
    c2.expect("MAIL FROM:<s@example.org>", 250)
    c2.expect("RCPT TO:<r@example.com>", 250)
    c2.expect("DATA", 354)
    c2.send("Subject: unfinished\r\n\r\nhalf")
    mtad.proc.send_signal(signal.SIGTERM)
    assert c.reply() == (421, ["4.3.2 %s Service shutting down" % HOST])
    assert c.closed()
    assert c2.reply()[0] == 421
    assert mtad.proc.wait(20) == 0
    assert committed(mtad) == []       # the unfinished message is not kept


def test_sigterm_after_pipelined_end_of_data(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<s@example.org>", 250)
    c.expect("RCPT TO:<r@example.com>", 250)
    c.expect("DATA", 354)
    c.send("Subject: done\r\n\r\nall of it\r\n.\r\n")
    qid = queued_id(c.reply())
    mtad.proc.send_signal(signal.SIGTERM)
    assert c.reply()[0] == 421
    assert mtad.proc.wait(20) == 0
    assert qid in committed(mtad)


def test_client_gone_before_the_250_keeps_the_message(mtad):
    for i in range(10):
        c = Client(mtad.smtp_port)
        c.expect("EHLO x", 250)
        c.expect("MAIL FROM:<gone@example.org>", 250)
        c.expect("RCPT TO:<r@example.com>", 250)
        c.expect("DATA", 354)
        c.send("Subject: gone %d\r\n\r\nbye\r\n.\r\n" % i)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()                         # reset at once: the reply has nowhere to go
    wait_until(lambda: mtad.maillog().count("from=<gone@example.org>") == 10, 20,
               what="ten committed messages")
    assert len(committed(mtad)) == 10
    d = Client(mtad.smtp_port)           # and the server is fine
    d.expect("EHLO x", 250)
    queued_id(transaction(d))


def test_load_with_smtp_source(mtad):
    import shutil
    import subprocess
    src = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not os.path.exists(src):
        pytest.skip("smtp-source not installed")
    for args in (["-s", "20", "-m", "200"], ["-d", "-s", "10", "-m", "200"]):
        p = subprocess.run([src, *args, "-l", "3000", "127.0.0.1:%d" % mtad.smtp_port],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    wait_until(lambda: len(committed(mtad)) >= 400, 20, what="400 queued messages")
