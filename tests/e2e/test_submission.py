"""Submission with SMTP AUTH (SPEC §11.3 submission_listen, smtpd_users_file).

Real clients: Python smtplib and swaks, on submission_listen (STARTTLS) and
smtps_listen (implicit TLS). The test's clients connect from 127.0.0.9,
outside smtpd_trusted_networks (127.0.0.1/32), so they relay only when
logged in. Hashes: SHA-512 ($6$), bcrypt ($2b$) and yescrypt ($y$), made
with libcrypt like crypt(3) users would.
"""
import base64
import ctypes
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.request
import warnings

import pytest

from conftest import free_port, wait_until
from nexthop import NextHop
from tls_fixture import tls_mtad, client_context, open_for_reload

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

DEADLINE = 20
SRC = ("127.0.0.9", 0)          # an untrusted client address


def yescrypt(pw):
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    setting = lib.crypt_gensalt(b"$y$", 0, None, 0)
    return crypt.crypt(pw, setting.decode())


def users_text(extra=""):
    return ("# user:hash[:patterns]\n"
            "alice:%s\n" % crypt.crypt("alice-pw", crypt.mksalt(crypt.METHOD_SHA512)) +
            "bob:%s:bob@example.com,@bob.test\n" % crypt.crypt("bob-pw", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 6)) +
            "carol:%s\n" % yescrypt("carol-pw") + extra)


@pytest.fixture
def sink():
    nh = NextHop("127.0.0.1", 0, name="sink.test").start()
    yield nh
    nh.stop()


@pytest.fixture
def sub(mtad_factory, tmp_path, sink):
    sub_port = free_port()
    m = tls_mtad(mtad_factory, tmp_path, start=False, conf={
        "submission_listen": "127.0.0.1:%d" % sub_port,
        "smtpd_users_file": "users",
        "smtpd_trusted_networks": "127.0.0.1/32",
        "smart_relay": "[127.0.0.1]:%d" % sink.port,
    })
    with open(os.path.join(m.key_dir, "users"), "w") as f:
        f.write(users_text())
    os.chmod(os.path.join(m.key_dir, "users"), 0o600)    # root's, read by the key-store reader
    m.sub_port = sub_port
    m.start()
    return m


def starttls(m, port=None):
    s = smtplib.SMTP("127.0.0.1", port or m.sub_port, timeout=DEADLINE, source_address=SRC)
    s.ehlo("client.test")
    s.starttls(context=client_context(m))
    s.ehlo("client.test")
    return s


def msg(frm, to, subj="hi"):
    return "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody\r\n" % (frm, to, subj)


def test_auth_only_after_tls(sub):
    with smtplib.SMTP("127.0.0.1", sub.sub_port, timeout=DEADLINE, source_address=SRC) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth") and s.has_extn("starttls")
        code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0alice-pw").decode())
        assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first")
        s.starttls(context=client_context(sub))
        s.ehlo("client.test")
        assert s.has_extn("auth") and s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    # smtp_listen: STARTTLS, but never AUTH
    with smtplib.SMTP("127.0.0.1", sub.smtp_port, timeout=DEADLINE, source_address=SRC) as s:
        s.ehlo("client.test")
        s.starttls(context=client_context(sub))
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0alice-pw").decode())
        assert code == 503


def test_untrusted_relays_only_when_authenticated(sub, sink):
    with starttls(sub) as s:
        s.mail("alice@example.com")
        code, text = s.rcpt("x@dest.test")
        assert code == 554 and b"Relay access denied" in text
        s.rset()
        s.login("alice", "alice-pw")
        s.sendmail("alice@example.com", ["x@dest.test"], msg("alice@example.com", "x@dest.test"))
    got = sink.wait_for(1, DEADLINE)
    assert got[0].rcpts == ["x@dest.test"]
    assert b"with ESMTPSA id" in got[0].data
    log = sub.maillog()
    assert "client=unknown[127.0.0.9], sasl_method=PLAIN, sasl_username=alice" in log, log


def test_smtps_login_yescrypt(sub, sink):
    with smtplib.SMTP_SSL("127.0.0.1", sub.smtps_port, timeout=DEADLINE, source_address=SRC,
                          context=client_context(sub)) as s:
        s.ehlo("client.test")
        s.user, s.password = "carol", "carol-pw"
        code, _ = s.auth("LOGIN", s.auth_login)
        assert code == 235
        s.sendmail("carol@any.test", ["y@dest.test"], msg("carol@any.test", "y@dest.test"))
    sink.wait_for(1, DEADLINE)
    assert "sasl_method=LOGIN, sasl_username=carol" in sub.maillog()


def test_sender_patterns(sub, sink):
    with starttls(sub) as s:
        s.login("bob", "bob-pw")
        code, text = s.mail("alice@example.com")
        assert code == 553 and text.startswith(b"5.7.1 <alice@example.com>: Sender address rejected")
        for ok in ("bob@example.com", "BOB@Example.com", "anyone@bob.test"):
            assert s.mail(ok)[0] == 250
            assert s.rcpt("z@dest.test")[0] == 250
            s.rset()
        assert s.mail("x@sub.bob.test")[0] == 553


def test_failures_and_lockout(sub):
    with starttls(sub) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "wrong")
        assert e.value.smtp_code == 535 and e.value.smtp_error == b"5.7.8 Error: authentication failed"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("nobody", "x")
        assert s.docmd("AUTH", "PLAIN")[0] == 334
        assert s.docmd("*") == (501, b"5.7.0 Authentication aborted")
        assert s.docmd("AUTH", "LOGIN")[0] == 334
        assert s.docmd("%%%") == (501, b"5.5.2 Cannot decode response")
        assert s.docmd("AUTH", "CRAM-MD5")[0] == 504
    assert "warning: unknown[127.0.0.9]: SASL PLAIN authentication failed: authentication failure" \
        in sub.maillog()
    # 10 failures in all block the address, the right password included (smtplib's
    # login() tries PLAIN, then LOGIN: each failed login() above counted twice)
    failed = sub.maillog().count("authentication failed: authentication failure")
    assert failed == 4
    for _ in range(10 - failed):
        with starttls(sub) as s:
            code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0bad").decode())
            assert code == 535
    with starttls(sub) as s:
        code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0alice-pw").decode())
        assert code == 454, (code, text)
    assert "SASL authentication blocked for 600s after 10 failures" in sub.maillog()
    # another address is not blocked
    with smtplib.SMTP("127.0.0.1", sub.sub_port, timeout=DEADLINE,
                      source_address=("127.0.0.10", 0)) as s:
        s.ehlo("c.test")
        s.starttls(context=client_context(sub))
        s.ehlo("c.test")
        s.login("alice", "alice-pw")


def test_swaks(sub, sink):
    base = ["swaks", "--server", "127.0.0.1", "--local-interface", "127.0.0.9",
            "--from", "alice@example.com", "--to", "w@dest.test", "--auth-user", "alice",
            "--auth-password", "alice-pw", "--tls-verify", "--tls-ca-path", sub.ca.cert,
            "--tls-sni", "mx.test.example", "--timeout", "20"]
    p = subprocess.run(base + ["--port", str(sub.sub_port), "--tls", "--auth", "PLAIN"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "235 2.7.0 Authentication successful" in p.stdout
    p = subprocess.run(base + ["--port", str(sub.smtps_port), "--tls-on-connect", "--auth", "LOGIN"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    sink.wait_for(2, DEADLINE)


def test_slow_hash_does_not_stall(mtad_factory, tmp_path, sink):
    """A costly bcrypt check runs off the loop: other sessions go on meanwhile."""
    sub_port = free_port()
    m = tls_mtad(mtad_factory, tmp_path, start=False, conf={
        "submission_listen": "127.0.0.1:%d" % sub_port, "smtpd_users_file": "users",
        "smart_relay": "[127.0.0.1]:%d" % sink.port})
    slow = crypt.crypt("slow-pw", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 15))
    with open(os.path.join(m.key_dir, "users"), "w") as f:
        f.write("slow:%s\n" % slow)
    m.start()
    s = starttls(m, sub_port)
    s.sock.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0slow\0slow-pw") + b"\r\n")
    # while the hash is computed: a whole transaction on another session
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=DEADLINE) as o:
        o.sendmail("a@b.test", ["c@dest.test"], msg("a@b.test", "c@dest.test"))
    s.sock.setblocking(False)
    try:
        early = s.sock.recv(100)
    except (ssl.SSLWantReadError, BlockingIOError):
        early = b""
    s.sock.setblocking(True)
    assert early == b"", "the AUTH reply came before the other session was served"
    assert s.getreply()[0] == 235
    s.close()


def test_users_reload_and_metrics(sub):
    with open(os.path.join(sub.key_dir, "users"), "w") as f:
        f.write(users_text("dave:%s\n" % crypt.crypt("dave-pw", crypt.mksalt(crypt.METHOD_SHA512))))
    open_for_reload(sub)     # another pytest run on the machine may have reset pytest-of-root to 0700
    sub.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "AUTH: 4 user(s) loaded" in sub.read_stderr(), DEADLINE,
               what="reload: %s" % sub.read_stderr()[-1000:])
    with starttls(sub) as s:
        s.login("dave", "dave-pw")
    ctx = ssl.create_default_context(cafile=sub.ca.cert)
    ctx.check_hostname = False                   # the UI is HTTPS with the SMTP certificate
    with urllib.request.urlopen("https://127.0.0.1:%d/metrics" % sub.ui_port, timeout=10,
                                context=ctx) as r:
        body = r.read().decode()
    assert "mta_smtp_auth_sessions_total 1" in body
    assert "mta_smtp_auth_sessions_active 0" in body
    # the dashboard's data: one login, none open now
    import json
    with urllib.request.urlopen("https://127.0.0.1:%d/api/stats" % sub.ui_port, timeout=10,
                                context=ctx) as r:
        sess = json.loads(r.read())["sessions"]
    assert (sess["auth_total"], sess["auth_active"]) == (1, 0), sess


def test_bad_users_file_is_startup_error(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path, start=False, conf={"smtpd_users_file": "users"})
    with open(os.path.join(m.key_dir, "users"), "w") as f:
        f.write("alice:$1$md5$notallowed\n")
    rc, err = m.start_expect_fail()
    assert rc != 0
    assert "Error: failed to pre-configure MTA: smtpd_users_file users line 1: user alice: " \
           "not a yescrypt ($y$), SHA-512 ($6$) or bcrypt ($2b$) hash" in err, err


def test_submission_needs_tls(mtad_factory):
    m = mtad_factory(conf={"submission_listen": "127.0.0.1:%d" % free_port()}, start=False)
    r = m.run_check()
    assert r.returncode != 0
    assert "submission_listen needs TLS (ssl_disabled = no)" in r.stderr, r.stderr


def test_pflogsumm_counts_authenticated_mail(sub, sink):
    pflogsumm = "/usr/sbin/pflogsumm"
    if not os.path.exists(pflogsumm):
        pytest.skip("pflogsumm is not installed")
    with starttls(sub) as s:
        s.login("alice", "alice-pw")
        for i in range(3):
            s.sendmail("alice@example.com", ["r%d@dest.test" % i], msg("alice@example.com", "r"))
    sink.wait_for(3, DEADLINE)
    wait_until(lambda: sub.maillog().count("sasl_username=alice") == 3, DEADLINE)
    p = subprocess.run([pflogsumm, "--syslog-name=mtad", os.path.join(sub.log_dir, "maillog")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    import re
    mm = re.search(r"^\s*(\d+)\s+received\s*$", p.stdout, re.M)
    assert mm and int(mm.group(1)) == 3, p.stdout[:2000]
