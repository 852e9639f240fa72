"""Inbound SMTP, the ordinary path: greeting, EHLO, a message queued, the
headers mtad adds, the mail log, every simple command, IPv6.

Each test starts the real mtad (tests/e2e/conftest.py) on free loopback
ports with a fresh data_dir; 127.0.0.0/8 is trusted unless a test says not.
"""
import os
import re
import smtplib
import socket
import subprocess

import pytest

from conftest import free_port, wait_until
from nexthop import NextHop
from test_smtp_lib import Client, ServerClosed, enhanced, queue_file, queued_id, transaction, committed

HOST = "mx.test.example"
ENH = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def test_greeting_and_ehlo_keywords(mtad):
    c = Client(mtad.smtp_port)
    assert c.greeting == (220, ["%s ESMTP mtad" % HOST])
    code, lines = c.cmd("EHLO client.example")
    assert code == 250
    assert lines[0] == HOST
    kw = lines[1:]
    for want in ("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
                 "SMTPUTF8", "CHUNKING"):
        assert want in kw, "missing %s in %r" % (want, kw)
    assert "STARTTLS" not in kw  # ssl_disabled = yes
    assert c.cmd("HELO client.example") == (250, [HOST])
    c.expect("QUIT", 221)
    assert c.closed()


def test_size_keyword_follows_config(mtad_factory):
    m = mtad_factory(conf={"message_size_limit": "123456"})
    c = Client(m.smtp_port)
    code, lines = c.cmd("EHLO x")
    assert "SIZE 123456" in lines[1:]


def test_message_queued_with_smtplib(mtad):
    with smtplib.SMTP("127.0.0.1", mtad.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@example.org")
        s.rcpt("rcpt@example.com")
        code, text = s.data(b"Subject: hi\r\n\r\nline one\r\n.leading dot\r\n")
    assert code == 250
    m = re.match(rb"2\.0\.0 Ok: queued as ([0-9A-F]{16})$", text)
    assert m, text
    qid = m.group(1).decode()
    assert qid in committed(mtad)
    body = queue_file(mtad, qid)
    assert b"line one\r\n.leading dot\r\n" in body
    assert b"sender@example.org" in body and b"rcpt@example.com" in body


def test_swaks_message(mtad):
    p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % mtad.smtp_port,
                        "--from", "a@example.org", "--to", "b@example.com",
                        "--helo", "swaks.example", "--timeout", "10"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})", p.stdout)
    assert m, p.stdout
    assert m.group(1) in committed(mtad)


def test_received_message_id_date_added(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO client.example", 250)
    qid = queued_id(transaction(c, rcpts=("one@example.com",),
                                body="Subject: no ids\r\n\r\nbody\r\n"))
    raw = queue_file(mtad, qid)
    received = re.search(rb"Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\r\n"
                         rb"\tby mx\.test\.example \(mtad\) with ESMTP id " + qid.encode() +
                         rb"\r\n\tfor <one@example\.com>; (.*?)\r\n", raw)
    assert received, raw[:600]
    assert re.match(rb"\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", received.group(1))
    assert b"Message-ID: <%s@mx.test.example>\r\n" % qid.encode() in raw
    assert re.search(rb"\r\nDate: \w{3}, \d{1,2} \w{3} \d{4} ", raw)

    # with their own Message-ID and Date, and two recipients: nothing added, no "for"
    qid2 = queued_id(transaction(c, rcpts=("one@example.com", "two@example.com"),
                                 body="Message-ID: <own@client>\r\nDate: Mon, 1 Jan 2024 "
                                      "00:00:00 +0000\r\n\r\nbody\r\n"))
    raw2 = queue_file(mtad, qid2)
    assert re.search(rb"with ESMTP id " + qid2.encode() + rb"; \w{3}, ", raw2), raw2[:600]
    assert b"\tfor <" not in raw2
    assert b"Message-ID: <%s@" % qid2.encode() not in raw2
    assert raw2.count(b"Date: ") == 1
    c.expect("QUIT", 221)


def test_helo_gives_smtp_protocol(mtad):
    c = Client(mtad.smtp_port)
    c.expect("HELO old.example", 250)
    qid = queued_id(transaction(c))
    assert b"with SMTP id " + qid.encode() in queue_file(mtad, qid)


def test_delivered_content_has_headers(mtad_factory):
    with NextHop("127.0.0.1") as nh:
        m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:%d" % nh.port})
        c = Client(m.smtp_port)
        c.expect("EHLO client.example", 250)
        qid = queued_id(transaction(c, body="Subject: relayed\r\n\r\nhello there\r\n"))
        msgs = nh.wait_for(1, timeout=20)
        data = msgs[0].data
        assert data.startswith(b"Received: from client.example (unknown [127.0.0.1])\r\n"), data[:300]
        assert b"id " + qid.encode() in data.split(b"\r\n\r\n")[0]
        assert b"\r\nMessage-ID: <%s@mx.test.example>\r\n" % qid.encode() in data
        assert b"\r\nDate: " in data
        assert data.endswith(b"Subject: relayed\r\n\r\nhello there\r\n")
        assert msgs[0].sender == "sender@example.org"
        assert msgs[0].rcpts == ["rcpt@example.com"]


def test_maillog_lines(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO client.example", 250)
    qid = queued_id(transaction(c, sender="s@example.org", body="Message-ID: <abc@client>\r\n\r\nx\r\n"))
    c.expect("QUIT", 221)
    assert c.closed()

    def logged():
        log = mtad.maillog()
        return "quit=1 commands=5" in log and log
    log = wait_until(logged, 10, what="disconnect line")
    assert re.search(r"mtad/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.1\]", log)
    assert "mtad/smtpd[" in log and "%s: client=unknown[127.0.0.1]" % qid in log
    assert "mtad/cleanup[" in log and "%s: message-id=<abc@client>" % qid in log
    assert re.search(r"mtad/qmgr\[\d+\]: %s: from=<s@example\.org>, size=\d+, nrcpt=1 "
                     r"\(queue active\)" % qid, log)
    assert ("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
            in log), log


def test_maillog_counts_failures(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("RCPT TO:<a@b.example>", 503)
    c.expect("BOGUS", 502)
    c.expect("QUIT", 221)
    wait_until(lambda: "quit=1" in mtad.maillog(), 10)
    assert "ehlo=1 rcpt=0/1 quit=1 unknown=0/1 commands=2/4" in mtad.maillog(), mtad.maillog()


def test_simple_commands_and_sequence_errors(mtad):
    c = Client(mtad.smtp_port)
    assert c.cmd("MAIL FROM:<a@b.example>")[0] == 503      # before HELO
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert c.cmd("RSET") == (250, ["2.0.0 Ok"])
    assert c.cmd("VRFY someone")[0] == 252
    assert c.cmd("VRFY")[0] == 501
    assert c.cmd("HELP")[0] == 214
    assert c.cmd("EHLO")[0] == 501
    c.expect("EHLO x", 250)
    assert c.cmd("RCPT TO:<a@b.example>") == (503, ["5.5.1 Error: need MAIL command"])
    assert c.cmd("DATA") == (503, ["5.5.1 Error: need RCPT command"])
    c.expect("MAIL FROM:<a@b.example>", 250)
    assert c.cmd("MAIL FROM:<a@b.example>") == (503, ["5.5.1 Error: nested MAIL command"])
    assert c.cmd("RCPT TO:<bad address>")[0] == 501
    assert c.cmd("DATA") == (554, ["5.5.1 Error: no valid recipients"])
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<>")[0] == 250                  # null sender
    assert c.cmd("RCPT TO:<x@y.example> NOTIFY=NEVER")[0] == 555
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL TO:<a@b>")[0] == 501
    assert c.cmd("XYZZY") == (502, ["5.5.2 Error: command not recognized"])
    assert c.cmd("STARTTLS")[0] == 502                       # no TLS configured
    assert c.cmd("DATA extra")[0] == 501
    assert c.cmd("QUIT") == (221, ["2.0.0 Bye"])
    assert c.closed()


def test_every_reply_has_an_enhanced_code(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    replies = [c.cmd(l) for l in ("NOOP", "RSET", "VRFY a", "HELP", "FOO", "MAIL FROM:<a@b.example>",
                                  "MAIL FROM:<a@b.example>", "RCPT TO:<c@d.example>", "RCPT TO:<",
                                  "BDAT x")]
    for r in replies:
        assert ENH.match(enhanced(r)), r
    c.expect("RSET", 250)
    c.expect("MAIL FROM:<a@b.example>", 250)
    c.expect("RCPT TO:<c@d.example>", 250)
    c.expect("DATA", 354)      # 354 and the greeting/EHLO carry none (RFC 2034 §3)
    c.send("x\r\n.\r\n")
    assert ENH.match(enhanced(c.reply()))
    assert ENH.match(enhanced(c.cmd("QUIT")))


def test_mail_parameters(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    assert c.cmd("MAIL FROM:<a@b.example> BODY=8BITMIME SIZE=100 SMTPUTF8")[0] == 250
    c.expect("RSET", 250)
    assert c.cmd("MAIL FROM:<a@b.example> BODY=BINARYMIME")[0] == 501
    assert c.cmd("MAIL FROM:<a@b.example> SIZE=abc")[0] == 501
    assert c.cmd("MAIL FROM:<a@b.example> FOO=bar")[0] == 555
    assert c.cmd("MAIL FROM: <a@b.example>")[0] == 250      # a blank after the colon, like Postfix
    c.expect("RSET", 250)
    assert c.cmd("MAIL FROM:<\u00e4@b.example>")[0] == 553  # UTF-8 without SMTPUTF8
    code, _ = c.cmd("MAIL FROM:<\u00e4@b.example> SMTPUTF8")
    assert code == 250
    assert c.cmd("RCPT TO:<\u00fc@d.example>")[0] == 250


def test_ipv6_listener(mtad_factory):
    p6 = free_port("::1")
    m = mtad_factory(conf={"smtp_listen": "127.0.0.1:%d, [::1]:%d" % (free_port(), p6),
                           "smtpd_trusted_networks": "127.0.0.0/8, ::1"},
                     start=False)
    m.smtp_port = int(m.conf["smtp_listen"].split(",")[0].rsplit(":", 1)[1])
    m.start()
    c = Client(p6, host="::1")
    assert c.greeting[0] == 220
    c.expect("EHLO v6.example", 250)
    qid = queued_id(transaction(c))
    raw = queue_file(m, qid)
    assert b"Received: from v6.example (unknown [IPv6:::1])" in raw
    c.expect("QUIT", 221)
    wait_until(lambda: "connect from unknown[::1]" in m.maillog(), 10)


def test_ipv6_untrusted_is_relay_denied(mtad_factory):
    p6 = free_port("::1")
    m = mtad_factory(conf={"smtp_listen": "127.0.0.1:%d, [::1]:%d" % (free_port(), p6),
                           "smtpd_trusted_networks": "127.0.0.0/8"}, start=False)
    m.smtp_port = int(m.conf["smtp_listen"].split(",")[0].rsplit(":", 1)[1])
    m.start()
    c = Client(p6, host="::1")
    c.expect("EHLO v6.example", 250)
    c.expect("MAIL FROM:<a@b.example>", 250)
    assert c.cmd("RCPT TO:<c@d.example>") == (554, ["5.7.1 <c@d.example>: Relay access denied"])


def test_listen_port_in_use_is_a_startup_error(mtad_factory):
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        m = mtad_factory(conf={"smtp_listen": "127.0.0.1:%d" % port}, start=False)
        rc, err = m.start_expect_fail()
        assert rc != 0
        assert ("Error: failed to start MTA server: cannot listen on 127.0.0.1:%d: "
                "Address already in use" % port) in err, err
    finally:
        busy.close()
