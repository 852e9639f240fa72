"""TLS on the server side (SPEC §2.1, §4, §6, §10; issue 4): STARTTLS, SMTPS,
the STARTTLS injection defence, protocol and cipher policy, resumption,
Received: and mail-log details, HTTPS for the UI, and reloading the key pair."""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from certs import CertAuthority
from conftest import wait_until
from nexthop import NextHop
from tls_fixture import SmtpLine, client_context, s_client, tls_mtad

TLS_LINE = re.compile(r"Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: "
                      r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)")


def test_ehlo_offers_starttls_until_tls_is_active(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.has_extn("starttls")
        code, _ = c.starttls(context=client_context(m))
        assert code == 220
        c.ehlo("client.example")
        assert not c.has_extn("starttls"), "STARTTLS offered again over TLS"
        assert c.has_extn("pipelining") and c.has_extn("chunking")
        code, msg = c.docmd("STARTTLS")
        assert code == 554, msg                       # already active
    assert wait_until(lambda: TLS_LINE.search(m.maillog()), 5, what="TLS log line")


def test_tls_session_starts_over_and_message_records_tls(mtad_factory, tmp_path):
    with NextHop("127.0.0.1") as nh:
        m = tls_mtad(mtad_factory, tmp_path, conf={"smart_relay": nh.addr})
        with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
            c.ehlo("before.example")
            c.starttls(context=client_context(m))
            # RFC 3207 §4.2: the EHLO before TLS is forgotten
            code, msg = c.docmd("MAIL FROM:<a@b.example>")
            assert code == 503, msg
            c.ehlo("after.example")
            c.sendmail("a@b.example", ["rcpt@dest.example"],
                       b"Subject: over tls\r\n\r\nbody\r\n")
        msg = nh.wait_for(1, timeout=20)[0]
        head = msg.data.split(b"\r\n\r\n", 1)[0].decode()
        assert "Received: from after.example (unknown [127.0.0.1])" in head, head
        assert re.search(r"\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 "
                         r"\(256/256 bits\)\)\r\n\tby mx\.test\.example \(mtad\) with ESMTPS id ",
                         head), head
    log = m.maillog()
    assert TLS_LINE.search(log), log
    assert "starttls=1" in log                       # Postfix's disconnect counts


def test_starttls_pipelined_command_is_discarded(mtad_factory, tmp_path):
    """CVE-2011-0411 class: MAIL FROM sent in the same packet as STARTTLS must never run."""
    m = tls_mtad(mtad_factory, tmp_path)
    sock = socket.create_connection(("127.0.0.1", m.smtp_port), timeout=10)
    c = SmtpLine(sock)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO x.example")[0] == 250
    c.send(b"STARTTLS\r\nMAIL FROM:<a@b.example>\r\n")
    code, lines = c.reply()
    assert code == 220, lines
    assert c.buf == b"", "server answered more than STARTTLS before TLS: %r" % c.buf
    tls = client_context(m).wrap_socket(sock, server_hostname="mx.test.example")
    t = SmtpLine(tls)
    # nothing may come for the injected MAIL FROM: read with a deadline
    tls.settimeout(1.5)
    try:
        data = tls.recv(4096)
    except (socket.timeout, ssl.SSLWantReadError, TimeoutError):
        data = b""
    assert b"250" not in data and data == b"", "answer to the injected command: %r" % data
    # and the session was reset: a transaction needs EHLO first
    assert t.cmd("MAIL FROM:<a@b.example>")[0] == 503
    assert t.cmd("EHLO x.example")[0] == 250
    assert t.cmd("MAIL FROM:<a@b.example>")[0] == 250
    assert t.cmd("QUIT")[0] == 221
    tls.close()


def test_plaintext_after_starttls_never_runs(mtad_factory, tmp_path):
    """Bytes sent after the 220 but not as TLS are a failed handshake, not commands."""
    m = tls_mtad(mtad_factory, tmp_path)
    sock = socket.create_connection(("127.0.0.1", m.smtp_port), timeout=10)
    c = SmtpLine(sock)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO x.example")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n")
    sock.settimeout(5)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    assert b"250" not in data, data
    sock.close()
    assert wait_until(lambda: "lost connection after STARTTLS" in m.maillog(), 5,
                      what="handshake failure logged")


def test_starttls_refused_in_transaction_and_with_argument(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    c = SmtpLine(socket.create_connection(("127.0.0.1", m.smtp_port), timeout=10))
    c.reply()
    c.cmd("EHLO x.example")
    assert c.cmd("STARTTLS now")[0] == 501
    assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
    assert c.cmd("STARTTLS")[0] == 503
    assert c.cmd("QUIT")[0] == 221


def test_openssl_s_client_starttls_and_smtps(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    rc, out = s_client(m, "-starttls", "smtp", "-verify_return_error")
    assert rc == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "TLSv1.3" in out and "221 2.0.0 Bye" in out, out
    rc, out = s_client(m, port=m.smtps_port, stdin=b"EHLO x.example\r\nQUIT\r\n")
    assert rc == 0, out
    assert "220 mx.test.example ESMTP mtad" in out, out
    assert "250-PIPELINING" in out and "STARTTLS" not in out.split("220 mx.test", 1)[1], out
    # Python over SMTPS, a whole message
    with smtplib.SMTP_SSL("127.0.0.1", m.smtps_port, timeout=10,
                          context=client_context(m)) as c:
        c.ehlo("client.example")
        assert not c.has_extn("starttls")
        c.sendmail("a@b.example", ["r@dest.example"], b"Subject: smtps\r\n\r\nx\r\n")
    assert wait_until(lambda: len(TLS_LINE.findall(m.maillog())) >= 3, 5)


@pytest.mark.parametrize("proto", ["-tls1", "-tls1_1"])
def test_old_protocols_refused_by_mtad(mtad_factory, tmp_path, proto):
    m = tls_mtad(mtad_factory, tmp_path)
    # SECLEVEL=0 so that Debian's OpenSSL client even tries the old protocol
    rc, out = s_client(m, "-starttls", "smtp", proto, "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    assert "Cipher is (NONE)" in out, out
    # the refusal is mtad's: it logged the failed handshake with the protocol reason
    assert wait_until(lambda: "SSL_accept error" in m.maillog(), 5, what="SSL_accept error")
    assert "unsupported protocol" in m.maillog(), m.maillog()
    # while the same client does TLS 1.2
    rc, out = s_client(m, "-starttls", "smtp", "-tls1_2", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc == 0 and "TLSv1.2" in out, out


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA",
                                    "DHE-RSA-AES128-GCM-SHA256"])
def test_weak_tls12_ciphers_refused(mtad_factory, tmp_path, cipher):
    m = tls_mtad(mtad_factory, tmp_path)
    rc, out = s_client(m, "-starttls", "smtp", "-tls1_2", "-cipher", cipher + "@SECLEVEL=0")
    assert rc != 0, out


def test_server_cipher_preference(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    rc, out = s_client(m, "-starttls", "smtp", "-tls1_2", "-cipher",
                       "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    assert rc == 0, out
    assert "ECDHE-ECDSA-AES256-GCM-SHA384" in out, out


@pytest.mark.parametrize("proto", ["-tls1_2", "-tls1_3"])
def test_session_resumption(mtad_factory, tmp_path, proto):
    m = tls_mtad(mtad_factory, tmp_path)
    sess = str(tmp_path / "sess.pem")
    rc, out = s_client(m, "-starttls", "smtp", proto, "-sess_out", sess,
                       stdin=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0, out
    assert os.path.getsize(sess) > 0
    rc, out = s_client(m, "-starttls", "smtp", proto, "-sess_in", sess,
                       stdin=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0, out
    assert "Reused, TLSv1." in out, out


def test_https_ui(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    p = subprocess.run(["curl", "-sk", "--max-time", "10", "-o", "/dev/null", "-w",
                        "%{http_code} %{ssl_verify_result}",
                        "https://127.0.0.1:%d/healthz" % m.ui_port],
                       capture_output=True, text=True, timeout=20)
    assert p.stdout.startswith("200 "), (p.stdout, p.stderr)
    p = subprocess.run(["curl", "-s", "--max-time", "10", "--cacert", m.ca.cert,
                        "--resolve", "mx.test.example:%d:127.0.0.1" % m.ui_port,
                        "-o", "/dev/null", "-w", "%{http_code}",
                        "https://mx.test.example:%d/healthz" % m.ui_port],
                       capture_output=True, text=True, timeout=20)
    assert p.stdout == "200", (p.stdout, p.stderr)
    # plain HTTP is not served on the TLS port
    p = subprocess.run(["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:%d/healthz" % m.ui_port],
                       capture_output=True, text=True, timeout=20)
    assert p.stdout != "200", p.stdout


def test_ssl_disabled_means_no_tls_anywhere(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path, conf={"ssl_disabled": "yes"})
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
        c.ehlo("x.example")
        assert not c.has_extn("starttls")
        assert c.docmd("STARTTLS")[0] == 502
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", m.smtps_port), timeout=2).close()


def _serial_seen(m):
    rc, out = s_client(m, "-starttls", "smtp", "-showcerts")
    assert rc == 0, out
    pem = out[out.index("-----BEGIN CERTIFICATE-----"):]
    pem = pem[:pem.index("-----END CERTIFICATE-----") + 25] + "\n"
    p = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.encode(),
                       capture_output=True, timeout=20)
    return p.stdout.decode().strip().split("=", 1)[1].upper()


def test_sighup_reloads_certificate(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    old = CertAuthority.serial(os.path.join(m.key_dir, "server.pem"))
    assert _serial_seen(m) == old
    # a session that stays open across the reload keeps working
    keep = smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10)
    keep.ehlo("x.example")
    keep.starttls(context=client_context(m))
    keep.ehlo("x.example")
    # renew: new key and certificate under the same names (root-only key)
    m.ca.issue(m.key_dir, "server", cn="mx.test.example")
    new = CertAuthority.serial(os.path.join(m.key_dir, "server.pem"))
    assert new != old
    assert oct(os.stat(os.path.join(m.key_dir, "server.key")).st_mode & 0o777) == "0o600"
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "key and certificate reloaded" in m.read_stderr(), 10,
               what="reload logged")
    assert _serial_seen(m) == new
    assert keep.noop()[0] == 250
    keep.quit()


def test_sighup_with_bad_pair_keeps_the_old_one(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    old = _serial_seen(m)
    # a key that does not belong to the certificate
    other = CertAuthority(tmp_path / "ca2")
    k2, _ = other.issue(tmp_path / "other", "x")
    with open(k2, "rb") as src, open(os.path.join(m.key_dir, "server.key"), "wb") as dst:
        dst.write(src.read())
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "the certificate does not match the private key" in m.read_stderr(), 10,
               what="reload refusal logged")
    err = m.read_stderr()
    assert "Error: SSL keys could not be found on key volume!" in err, err
    assert _serial_seen(m) == old
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
        c.starttls(context=client_context(m))
        assert c.ehlo("x.example")[0] == 250


def test_tls_sessions_metric(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
            c.starttls(context=client_context(m))
    p = subprocess.run(["curl", "-sk", "--max-time", "10",
                        "https://127.0.0.1:%d/metrics" % m.ui_port],
                       capture_output=True, text=True, timeout=20)
    got = re.search(r"^mta_tls_sessions_total (\d+)", p.stdout, re.M)
    assert got and int(got.group(1)) >= 2, p.stdout[:2000]



def test_mtactl_with_tls_on(mtad_factory, tmp_path):
    """The operator's tool still works when the API is HTTPS-only."""
    from conftest import BIN_DIR
    m = tls_mtad(mtad_factory, tmp_path)
    for args in (["stats"], ["mailq"]):
        p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "-c", m.conf_path, *args],
                           env=m.env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
