"""Helpers for the inbound SMTP tests (test_smtp_*.py): a raw SMTP client.

smtplib hides what the server sent and refuses to send what a hostile
client would, so most tests talk through Client: raw bytes out, whole
replies (code, lines) in, every read bounded by a socket timeout and a
size limit. This file holds no tests.
"""
import os
import socket
import time

REPLY_MAX = 65536


class ServerClosed(Exception):
    pass


class Client:
    """One raw SMTP connection."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, greet=True, source=None):
        """source: the local address to connect from (another 127.0.0.0/8 address)."""
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        if source is not None:
            self.s.bind((source, 0))
        self.s.connect((host, port))
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > REPLY_MAX:
                raise AssertionError("reply line too long")
            chunk = self.s.recv(65536)
            if not chunk:
                raise ServerClosed("connection closed; partial: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        assert line.endswith(b"\r"), "reply line without CRLF: %r" % line
        return line[:-1].decode("utf-8", "replace")

    def reply(self):
        """A whole reply: (code, [text lines]); asserts the multi-line format."""
        lines = []
        while True:
            line = self._line()
            assert len(line) >= 3 and line[:3].isdigit(), "bad reply line %r" % line
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                break
            assert line[3] == "-", "bad reply line %r" % line
            assert len(lines) < 100
        code = int(lines[0][:3])
        assert all(int(l[:3]) == code for l in lines), lines
        return code, [l[4:] for l in lines]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect(self, line, code):
        got = self.cmd(line)
        assert got[0] == code, "%s: got %r, want %d" % (line, got, code)
        return got

    def closed(self, timeout=5.0):
        """True when the server closes the connection (EOF or reset) within timeout."""
        self.s.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def enhanced(reply):
    """The RFC 3463 code at the start of the first text line, e.g. '2.1.0'."""
    text = reply[1][0] if reply[1] else ""
    parts = text.split(" ", 1)
    return parts[0]


def transaction(c, sender="sender@example.org", rcpts=("rcpt@example.com",),
                body="Subject: test\r\n\r\nhello\r\n"):
    """MAIL, RCPT..., DATA, body, '.': returns the final reply."""
    c.expect("MAIL FROM:<%s>" % sender, 250)
    for r in rcpts:
        c.expect("RCPT TO:<%s>" % r, 250)
    c.expect("DATA", 354)
    if isinstance(body, str):
        body = body.encode()
    c.send(body + b".\r\n")
    return c.reply()


def queued_id(reply):
    """The queue id from '250 2.0.0 Ok: queued as ID'."""
    assert reply[0] == 250, reply
    text = reply[1][0]
    assert "queued as " in text, reply
    return text.rsplit(" ", 1)[1]


def queue_file(m, qid):
    """The bytes of a queued message's file."""
    with open(os.path.join(m.data_dir, "queue", qid), "rb") as f:
        return f.read()


def committed(m):
    """Queue ids of messages in the queue (the queue also keeps empty spare files)."""
    return m.queue_files()
