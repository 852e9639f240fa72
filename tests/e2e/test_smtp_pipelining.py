"""Inbound SMTP: PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030).

Replies must come back complete and in command order however the commands
arrive, also across a commit that waits for the disk; BDAT chunks are taken
byte for byte and a refused BDAT's chunk is never read as commands.
"""
import re

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
    part2 = b"bare\nLF and CR\r are data in BDAT\r\n"
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
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT 6\r\nhello\n"
           b"BDAT 2\r\n\r\nBDAT 0 LAST\r\nNOOP\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    assert c.reply() == (250, ["2.0.0 Ok: 6 octets"])
    assert c.reply() == (250, ["2.0.0 Ok: 2 octets"])
    qid = queued_id(c.reply())
    assert c.reply() == (250, ["2.0.0 Ok"])
    assert b"hello\n\r\n" in queue_file(mtad, qid)


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
