"""tls_fixture.py - an mtad with TLS on, for the TLS tests.

    from tls_fixture import tls_mtad, s_client
    m = tls_mtad(mtad_factory, tmp_path)          # started; m.ca, m.key_dir, m.smtps_port
    out = s_client(m, "-starttls", "smtp")        # openssl s_client against the SMTP port

The key store is tmp_path/keys with server.key (mode 0600, root's) and
server.pem (leaf + CA), made by certs.CertAuthority. The directories up to
/tmp are opened to others (o+x) and the configuration made readable, so
that mtad, running as mail_owner after start-up, can re-read its
configuration on SIGHUP; the key itself stays readable by root only (the
key-store reader process reads it).
"""
import os
import socket
import ssl
import subprocess

from certs import CertAuthority
from conftest import free_port

__all__ = ["tls_mtad", "s_client", "open_for_reload", "client_context", "SmtpLine"]


def open_for_reload(m):
    d = os.path.dirname(m.conf_path)
    while d not in ("/", "/tmp", ""):
        os.chmod(d, os.stat(d).st_mode | 0o011)
        d = os.path.dirname(d)
    os.chmod(m.conf_path, 0o644)


def tls_mtad(mtad_factory, tmp_path, conf=None, env=None, start=True, key_type="ec"):
    ca = CertAuthority(tmp_path / "ca")
    key_dir = tmp_path / "keys"
    ca.issue(key_dir, "server", cn="mx.test.example", key_type=key_type)
    smtps_port = free_port()
    c = {
        "ssl_disabled": "no",
        "key_dir": str(key_dir),
        "ssl_key_file": "server.key",
        "ssl_cert_file": "server.pem",
        "smtps_listen": "127.0.0.1:%d" % smtps_port,
    }
    c.update(conf or {})
    m = mtad_factory(conf=c, env=env, start=False)
    m.ca = ca
    m.key_dir = str(key_dir)
    m.smtps_port = smtps_port
    open_for_reload(m)
    if start:
        m.start()
    return m


def s_client(m, *args, port=None, stdin=b"QUIT\r\n", timeout=20):
    """openssl s_client against m (SMTP port by default); returns (rc, stdout+stderr)."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % (port or m.smtp_port),
           "-CAfile", m.ca.cert, "-servername", "mx.test.example", "-ign_eof", *args]
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def client_context(m):
    ctx = ssl.create_default_context(cafile=m.ca.cert)
    ctx.check_hostname = True
    return ctx


class SmtpLine:
    """A raw SMTP client over a socket (plain or TLS) that reads whole replies."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self, timeout=10.0):
        """The next complete reply: (code, [lines]); raises socket.timeout."""
        self.sock.settimeout(timeout)
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("closed; got %r" % (lines,))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode(errors="replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, line, timeout=10.0):
        self.send(line.encode() + b"\r\n")
        return self.reply(timeout)
