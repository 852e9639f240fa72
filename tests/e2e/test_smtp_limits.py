"""Inbound SMTP limits: SIZE, message size, recipients, line length,
garbage input, the error limit, sessions per client and in total, the idle
timeout and the disk-space guard (SPEC §2.3, §4, §8).
"""
import os
import random
import socket
import time

import pytest

from conftest import wait_until
from test_smtp_lib import Client, ServerClosed, queue_file, queued_id, transaction, committed

HOST = "mx.test.example"


def test_size_parameter_over_limit(mtad_factory):
    m = mtad_factory(conf={"message_size_limit": "1000"})
    c = Client(m.smtp_port)
    c.expect("EHLO x", 250)
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=1001") == (552, ["5.3.4 Message size exceeds fixed limit"])
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=1000")[0] == 250
    wait_until(lambda: "NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 552 5.3.4" in m.maillog(), 10)


def test_body_over_limit(mtad_factory):
    m = mtad_factory(conf={"message_size_limit": "1000"})
    c = Client(m.smtp_port)
    c.expect("EHLO x", 250)
    r = transaction(c, body="Subject: big\r\n\r\n" + ("y" * 78 + "\r\n") * 100)
    assert r == (552, ["5.3.4 Message size exceeds fixed limit"])
    assert c.cmd("NOOP")[0] == 250                    # the session goes on
    assert committed(m) == []
    # just under the limit is fine
    qid = queued_id(transaction(c, body="Subject: ok\r\n\r\n" + "z" * 900 + "\r\n"))
    assert committed(m) == [qid]


def test_recipient_limit(mtad_factory):
    m = mtad_factory(conf={"smtpd_recipient_limit": "3"})
    c = Client(m.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<a@example.org>", 250)
    for i in range(3):
        c.expect("RCPT TO:<r%d@example.com>" % i, 250)
    for i in range(25):   # not counted as errors: no 421 after 20 of them
        assert c.cmd("RCPT TO:<more%d@example.com>" % i) == (452, ["4.5.3 Error: too many recipients"])
    c.expect("DATA", 354)
    c.send("x\r\n.\r\n")
    qid = queued_id(c.reply())
    raw = queue_file(m, qid)
    assert b"r2@example.com" in raw and b"more0@" not in raw


def test_line_length(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    assert c.cmd("NOOP " + "a" * 505)[0] == 250        # 512 octets with CRLF
    assert c.cmd("NOOP " + "a" * 506) == (500, ["5.5.2 Error: line too long"])
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])        # the rest of the long line was skipped
    c.send("MAIL FROM:<" + "b" * 100000 + "@example.org>\r\nNOOP\r\n")
    assert c.reply() == (500, ["5.5.2 Error: line too long"])
    assert c.reply() == (250, ["2.0.0 Ok"])
    # a long line arriving slowly, without its end, gets its 500 before the end comes
    c.send("X" * 600)
    assert c.reply()[0] == 500
    c.send("\r\nNOOP\r\n")
    assert c.reply()[0] == 250


@pytest.mark.parametrize("junk,code", [
    (b"\x00\x01\x02\r\n", 500),
    (b"NOOP\x00\r\n", 500),
    (b"\xff\xfe\xfd\r\n", 500),
    (b"N\xc3\xa4OP\r\n", 500),
    (b"\r\n", 500),
    (b"HELO h\xc3\xa4st\r\n", 501),
    (b"MAIL FROM:<a\x7fb@example.org>\r\n", 500),
    (b"EHLO x\ry\r\n", 500),
])
def test_garbage_commands(mtad, junk, code):
    c = Client(mtad.smtp_port)
    c.send(junk)
    r = c.reply()
    assert r[0] == code, (junk, r)
    assert r[1][0].startswith("5.5."), r
    assert c.cmd("NOOP")[0] == 250


def test_random_binary_input_never_kills_the_server(mtad):
    rnd = random.Random(1234)
    for i in range(20):
        c = Client(mtad.smtp_port)
        blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000)))
        try:
            c.send(blob + b"\r\nQUIT\r\n")
            while True:
                code, _ = c.reply()
                assert 200 <= code < 600
                if code in (221, 421):
                    break
        except (ServerClosed, ConnectionResetError):
            pass
        c.close()
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    queued_id(transaction(c))


def test_too_many_errors(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    for i in range(19):
        assert c.cmd("BOGUS%d" % i)[0] == 502
    assert c.cmd("BOGUS") == (502, ["5.5.2 Error: command not recognized"])
    assert c.reply() == (421, ["4.7.0 %s Error: too many errors" % HOST])
    assert c.closed()


def test_http_request_is_refused(mtad):
    c = Client(mtad.smtp_port)
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.reply()[0] == 221
    assert c.closed()


def test_per_client_limit_for_untrusted(mtad_factory):
    m = mtad_factory(conf={"smtpd_trusted_networks": "10.0.0.0/8",
                           "smtpd_client_connection_limit": "2"})
    # the harness's readiness probe is a session too: let it end first
    wait_until(lambda: "disconnect from" in m.maillog(), 10, what="probe session end")
    a = Client(m.smtp_port)
    b = Client(m.smtp_port)
    assert a.greeting[0] == 220 and b.greeting[0] == 220
    c = Client(m.smtp_port)
    assert c.greeting == (421, ["4.7.0 %s Error: too many connections from 127.0.0.1" % HOST])
    assert c.closed()
    a.expect("QUIT", 221)
    assert a.closed()

    def third_gets_in():
        d = Client(m.smtp_port)
        ok = d.greeting[0] == 220
        d.close()
        return ok
    wait_until(third_gets_in, 10, what="a free slot after QUIT")
    wait_until(lambda: "Connection concurrency limit exceeded" in m.maillog(), 10)


def test_per_client_limit_does_not_apply_to_trusted(mtad_factory):
    m = mtad_factory(conf={"smtpd_client_connection_limit": "2"})
    cs = [Client(m.smtp_port) for _ in range(5)]
    assert all(c.greeting[0] == 220 for c in cs)


def test_total_session_limit(mtad_factory):
    m = mtad_factory(conf={"smtpd_max_sessions": "3"})
    wait_until(lambda: "disconnect from" in m.maillog(), 10, what="probe session end")
    cs = [Client(m.smtp_port) for _ in range(3)]
    assert all(c.greeting[0] == 220 for c in cs)
    d = Client(m.smtp_port)
    assert d.greeting == (421, ["4.7.0 %s Error: too many connections" % HOST])
    assert d.closed()


def test_idle_timeout(mtad_factory):
    m = mtad_factory(conf={"smtpd_timeout": "2s"})
    c = Client(m.smtp_port)
    c.expect("EHLO x", 250)
    t0 = time.monotonic()
    c.s.settimeout(15)
    assert c.reply() == (421, ["4.4.2 %s Error: timeout exceeded" % HOST])
    assert 1.5 < time.monotonic() - t0 < 10
    assert c.closed()
    wait_until(lambda: "timeout after EHLO from unknown[127.0.0.1]" in m.maillog(), 10)


def test_idle_timeout_in_data(mtad_factory):
    m = mtad_factory(conf={"smtpd_timeout": "2s"})
    c = Client(m.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<a@example.org>", 250)
    c.expect("RCPT TO:<b@example.com>", 250)
    c.expect("DATA", 354)
    c.send("Subject: half\r\n\r\npart")
    c.s.settimeout(15)
    assert c.reply()[0] == 421
    assert committed(m) == []
