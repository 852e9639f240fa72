"""Large messages through the relay path (socket -> DATA reader -> queue file ->
outbound client -> socket): the content a next hop receives is byte for byte the
content that was sent, on every path the relay picks:

- plain next hop, content that needs no change (no line starts with '.'): sent
  straight from the queue file (sendfile, QUEUE_F_WIRE);
- content with lines that start with '.': dot-stuffed again on the way out;
- a next hop that offers STARTTLS: every byte through TLS;
- BDAT input, with and without a final CRLF.
"""
import hashlib
import smtplib
import socket
import ssl

from certs import CertAuthority
from nexthop import NextHop

MB = 1024 * 1024


def body(size, dots=False):
    """size bytes of 76-character CRLF lines; with dots, every 7th line starts with '.'."""
    out, n = [], 0
    i = 0
    while n < size:
        line = ("%06d " % i) + "x" * 68
        if dots and i % 7 == 3:
            line = "." + line[1:]
        if dots and i % 11 == 5:
            line = "."                      # a line that is one dot
        out.append(line + "\r\n")
        n += len(line) + 2
        i += 1
    return "".join(out).encode()


def message(tag, content):
    return b"From: <a@src.example>\r\nTo: <b@dst.example>\r\nSubject: big\r\nX-Tag: " + \
        tag.encode() + b"\r\n\r\n" + content


def relayed(nh, tag, timeout=60):
    key = b"X-Tag: " + tag.encode() + b"\r\n"
    return nh.wait_until(lambda h: next((x for x in h.messages if key in x.data), None),
                         timeout, what="message %s at the next hop" % tag)


def smtp_send(m, data):
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=60) as c:
        c.sendmail("a@src.example", ["b@dst.example"], data)


def assert_same(got, want):
    # our Received: header (the prepend record) first, then the content as sent
    assert got.startswith(b"Received: from "), got[:80]
    assert got.endswith(want), "content differs: got %d bytes (sha256 %s), want a tail of %d (%s)" % (
        len(got), hashlib.sha256(got).hexdigest()[:16], len(want),
        hashlib.sha256(want).hexdigest()[:16])


def test_large_messages_plain(mtad_factory):
    with NextHop("127.0.0.1") as nh:
        m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:%d" % nh.port,
                               "message_size_limit": str(20 * MB)})
        cases = [("wire1m", body(MB)), ("wire10m", body(10 * MB)),
                 ("dots1m", body(MB, dots=True)), ("empty", b""),
                 ("lastdot", b"a\r\n..\r\n.x\r\n")]
        for tag, content in cases:
            data = message(tag, content)
            smtp_send(m, data)
            assert_same(relayed(nh, tag).data, data)


def test_large_messages_over_tls(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    key, cert = ca.issue(tmp_path / "nh", "nexthop", cn="relay.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with NextHop("127.0.0.1", tls_context=ctx) as nh:
        m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:%d" % nh.port},
                         env={"SSL_CERT_FILE": ca.cert})
        for tag, content in [("tls-wire", body(2 * MB)), ("tls-dots", body(MB, dots=True))]:
            data = message(tag, content)
            smtp_send(m, data)
            got = relayed(nh, tag)
            assert got.tls, "message did not arrive over TLS"
            assert_same(got.data, data)


def _reply(f):
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        lines.append(line)
        if line[3:4] != b"-":
            return lines[-1]


def bdat_send(m, data, chunk):
    with socket.create_connection(("127.0.0.1", m.smtp_port), timeout=60) as s:
        f = s.makefile("rb")
        assert _reply(f).startswith(b"220")
        for cmd in (b"EHLO c.test", b"MAIL FROM:<a@src.example>", b"RCPT TO:<b@dst.example>"):
            s.sendall(cmd + b"\r\n")
            assert _reply(f)[:1] == b"2", cmd
        for i in range(0, len(data), chunk):
            piece = data[i:i + chunk]
            last = i + chunk >= len(data)
            s.sendall(b"BDAT %d%s\r\n" % (len(piece), b" LAST" if last else b"") + piece)
            r = _reply(f)
            assert r.startswith(b"250"), r
        s.sendall(b"QUIT\r\n")


def test_large_messages_bdat(mtad_factory):
    with NextHop("127.0.0.1") as nh:
        m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:%d" % nh.port})
        cases = [("bdat-wire", body(3 * MB), 100000),
                 ("bdat-dots", body(MB, dots=True), 65536),
                 ("bdat-nocrlf", body(MB) + b"no line end at the end", 300000)]
        for tag, content, chunk in cases:
            data = message(tag, content)
            bdat_send(m, data, chunk)
            got = relayed(nh, tag)
            if data.endswith(b"\r\n"):
                assert_same(got.data, data)
            else:                              # the relay ends the last line for DATA
                assert_same(got.data, data + b"\r\n")


def test_wire_flag_survives_restart(mtad_factory):
    """The flag that lets delivery send the file as it is comes back with recovery."""
    with NextHop("127.0.0.1") as nh:
        m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:%d" % nh.port,
                               "retry_min_backoff": "1s", "retry_max_backoff": "1s"})
        nh.tempfail("MAIL")                    # keep both queued for now
        wire, dots = message("r-wire", body(MB)), message("r-dots", body(MB, dots=True))
        smtp_send(m, wire)
        smtp_send(m, dots)
        nh.wait_until(lambda h: sum(1 for _, l in h.commands if l[:4].upper() == "MAIL") >= 2,
                      30, what="both tried once")
        m.stop()
        nh.accept()
        m.start()
        assert_same(relayed(nh, "r-wire").data, wire)
        assert_same(relayed(nh, "r-dots").data, dots)
