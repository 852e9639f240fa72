"""Inbound SMTP: PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030).

Replies must come back complete and in command order however the commands
arrive, also across a commit that waits for the disk; BDAT chunks are taken
byte for byte, under DATA's rule for line ends (a bare CR or LF refuses the
message with 5.5.2), and a refused BDAT's chunk is never read as commands.
"""
import re

import pytest

from conftest import wait_until
from nexthop import NextHop
from test_smtp_lib import Client, queue_file, queued_id, committed


def test_whole_session_in_one_packet(mtad):
    c = Client(mtad.smtp_port)
    c.send("EHLO pipe.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
           "RCPT TO:<c@example.com>\r\nDATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert c.reply()[0] == 250
    assert c.reply() == (250, ["2.1.0 Ok"])
    assert c.reply() == (250, ["2.1.5 Ok"])
    assert c.reply() == (250, ["2.1.5 Ok"])
    assert c.reply()[0] == 354
    qid = queued_id(c.reply())
    assert c.reply() == (221, ["2.0.0 Bye"])
    assert c.closed()
    assert qid in committed(mtad)


def test_replies_stay_in_order_across_commits(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO pipe.example", 250)
    c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    # the end of one message and the whole next transaction in one write
    ids = []
    for i in range(5):
        c.send("Subject: m%d\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@example.org>\r\n"
               "RCPT TO:<b@example.com>\r\nDATA\r\n" % i)
        ids.append(queued_id(c.reply()))
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send("last\r\n.\r\nNOOP\r\nQUIT\r\n")
    ids.append(queued_id(c.reply()))
    assert c.reply() == (250, ["2.0.0 Ok"])
    assert c.reply()[0] == 221
    assert len(set(ids)) == 6
    files = committed(mtad)
    for q in ids:
        assert q in files


def test_many_commands_in_one_write(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    n = 500
    c.send("NOOP\r\nRSET\r\n" * n + "VRFY x\r\n")
    for i in range(n):
        assert c.reply() == (250, ["2.0.0 Ok"]), i
        assert c.reply() == (250, ["2.0.0 Ok"]), i
    assert c.reply()[0] == 252


def test_more_replies_than_the_output_bound_then_wait(mtad):
    # 30 KB of replies to one write, and the client reads only after sending
    # everything: the server must go on by itself once its replies are out.
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    n = 2500
    c.send(b"NOOP\r\n" * n + b"QUIT\r\n")
    for i in range(n):
        assert c.reply() == (250, ["2.0.0 Ok"]), i
    assert c.reply()[0] == 221


def test_client_that_does_not_read_is_bounded(mtad):
    # 2 MB of NOOPs without reading a reply: the server must neither die nor
    # buffer without bound; once we read, every reply arrives in order.
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    import threading
    total = 40000
    err = []

    def writer():
        try:
            c.send(b"NOOP\r\n" * total)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=writer)
    t.start()
    got = 0
    while got < total:
        assert c.reply() == (250, ["2.0.0 Ok"])
        got += 1
    t.join(30)
    assert not err
    assert c.cmd("QUIT")[0] == 221


def test_bdat_chunks(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<a@example.org>", 250)
    c.expect("RCPT TO:<b@example.com>", 250)
    part1 = b"Subject: chunked\r\n\r\nline\r\n.\r\n..dots stay\r\n"
    part2 = b"the last\r\nchunk\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert c.reply() == (250, ["2.0.0 Ok: %d octets" % len(part1)])
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    qid = queued_id(c.reply())
    raw = queue_file(mtad, qid)
    assert part1 + part2 in raw
    assert b"with ESMTP id " + qid.encode() in raw
    c.expect("QUIT", 221)


def test_bdat_pipelined_and_empty_last(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    # the CRLF is split across the chunks: no bare CR, no bare LF
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT 6\r\nhello\r"
           b"BDAT 2\r\n\nXBDAT 0 LAST\r\nNOOP\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    assert c.reply() == (250, ["2.0.0 Ok: 6 octets"])
    assert c.reply() == (250, ["2.0.0 Ok: 2 octets"])
    qid = queued_id(c.reply())
    assert c.reply() == (250, ["2.0.0 Ok"])
    assert b"hello\r\nX" in queue_file(mtad, qid)


BARE = [
    b"Subject: a\r\n\r\nbare\nLF\r\n",
    b"Subject: a\r\n\r\nbare\rCR\r\n",
    b"Subject: a\r\n\r\nx\r.\rMAIL FROM:<evil@example.org>\r\n",     # <CR>.<CR>
    b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@example.org>\r\n",     # <LF>.<LF>
    b"Subject: a\r\n\r\nx\r\n.\nMAIL FROM:<evil@example.org>\r\n",  # <CRLF>.<LF>
    b"Subject: a\r\n\r\nends with a CR\r",
]


@pytest.mark.parametrize("content", BARE, ids=range(len(BARE)))
def test_bdat_bare_line_ends_are_refused(mtad, content):
    """SPEC §4: BDAT content follows DATA's rule for bare CR and LF (5.5.2),
    whatever the chunking; the session goes on and nothing is queued."""
    for split in (len(content), len(content) // 2, len(content) - 1):
        c = Client(mtad.smtp_port)
        c.expect("EHLO x", 250)
        c.expect("MAIL FROM:<a@example.org>", 250)
        c.expect("RCPT TO:<b@example.com>", 250)
        first, rest = content[:split], content[split:]
        if rest:
            c.send(b"BDAT %d\r\n" % len(first) + first)
            r = c.reply()
            if r[0] == 250:           # the bare line end was not in the first chunk
                c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
                r = c.reply()
            else:                     # refused at once: the LAST chunk is dropped
                c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
                assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
        else:
            c.send(b"BDAT %d LAST\r\n" % len(first) + first)
            r = c.reply()
        assert r == (550, ["5.5.2 Error: bare <CR> or <LF> received"]), (split, r)
        assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])        # never read as commands
        c.expect("QUIT", 221)
    assert committed(mtad) == []
    wait_until(lambda: "reject: END-OF-MESSAGE from unknown[127.0.0.1]: 550 5.5.2 "
               "Error: bare <CR> or <LF> received" in mtad.maillog(), 10, what="reject line")


def test_bdat_bare_lf_refused_at_its_chunk(mtad):
    """A bare LF in a middle chunk ends the transaction there (like SIZE)."""
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<a@example.org>", 250)
    c.expect("RCPT TO:<b@example.com>", 250)
    c.send(b"BDAT 5\r\na\nbcdBDAT 3 LAST\r\nxyz")
    assert c.reply() == (550, ["5.5.2 Error: bare <CR> or <LF> received"])
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    assert committed(mtad) == []


def test_bdat_dot_lines_relayed_stuffed(mtad_factory):
    """A BDAT message whose lines start with '.' (one of them a lone '.'
    followed by commands) reaches the next hop whole, as one message: the
    outbound client dot-stuffs every line."""
    with NextHop("127.0.0.1") as nh:
        m = mtad_factory(conf={"smart_relay": nh.addr})
        body = (b"Subject: dots\r\n\r\n.\r\nMAIL FROM:<evil@example.org>\r\n"
                b"RCPT TO:<victim@example.net>\r\nDATA\r\n..two\r\n.\r\nend\r\n")
        c = Client(m.smtp_port)
        c.expect("EHLO x", 250)
        c.expect("MAIL FROM:<a@example.org>", 250)
        c.expect("RCPT TO:<b@example.com>", 250)
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        queued_id(c.reply())
        c.expect("QUIT", 221)
        msgs = nh.wait_for(1)
        wait_until(lambda: "status=sent" in m.maillog(), 10, what="the delivery line")
        assert len(nh.messages) == 1
        assert msgs[0].data.endswith(body), msgs[0].data[-300:]
        assert nh.verbs().count("MAIL") == 1 and "DATA" in nh.verbs()


def test_refused_bdat_chunk_is_discarded(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    # no MAIL: the chunk ("QUIT\r\n") must be dropped, not run
    c.send(b"BDAT 6\r\nQUIT\r\n")
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    # no valid recipient
    c.expect("MAIL FROM:<a@example.org>", 250)
    chunk = b"MAIL FROM:<evil@x.ex>\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert c.reply() == (554, ["5.5.1 Error: no valid recipients"])
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert c.cmd("BDAT 1x")[0] == 501
    c.expect("RSET", 250)


def test_data_after_bdat_is_refused(mtad):
    c = Client(mtad.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<a@example.org>", 250)
    c.expect("RCPT TO:<b@example.com>", 250)
    c.send(b"BDAT 3\r\nabc")
    assert c.reply()[0] == 250
    assert c.cmd("DATA") == (503, ["5.5.1 Error: DATA after BDAT"])
    assert c.cmd("RCPT TO:<c@example.com>")[0] == 503
    c.expect("RSET", 250)
    assert committed(mtad) == []


def test_bdat_too_big_is_discarded(mtad_factory):
    m = mtad_factory(conf={"message_size_limit": "1000"})
    c = Client(m.smtp_port)
    c.expect("EHLO x", 250)
    c.expect("MAIL FROM:<a@example.org>", 250)
    c.expect("RCPT TO:<b@example.com>", 250)
    c.send(b"BDAT 5000\r\n" + b"x" * 5000 + b"BDAT 3 LAST\r\nabc")
    assert c.reply() == (552, ["5.3.4 Message size exceeds fixed limit"])
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    assert c.cmd("NOOP")[0] == 250
    assert committed(m) == []


def test_half_closed_client_gets_every_reply(mtad):
    import socket
    c = Client(mtad.smtp_port)
    c.send("EHLO half.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
           "DATA\r\nSubject: half\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
    c.s.shutdown(socket.SHUT_WR)
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    qid = queued_id(c.reply())
    assert c.reply()[0] == 250
    assert c.reply() == (221, ["2.0.0 Bye"])
    assert c.closed()
    assert qid in committed(mtad)


def test_half_closed_without_quit(mtad):
    import socket
    c = Client(mtad.smtp_port)
    c.send("EHLO half.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
           "DATA\r\nSubject: half\r\n\r\nbody\r\n.\r\n")
    c.s.shutdown(socket.SHUT_WR)
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    qid = queued_id(c.reply())
    assert c.closed()
    assert qid in committed(mtad)
    # and an unfinished message is dropped
    d = Client(mtad.smtp_port)
    d.send("EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\npart")
    d.s.shutdown(socket.SHUT_WR)
    assert [d.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    assert d.closed()
    assert committed(mtad) == [qid]
