"""A real relay that demands SMTP AUTH (SPEC §11.2): a private Postfix with
Cyrus SASL (sasldb) offering AUTH only after STARTTLS on one port, LOGIN only
on another, and implicit TLS (smtpd_tls_wrappermode) on a third; it relays to
a scripted sink (nexthop.py). mtad authenticates with PLAIN and with LOGIN
and delivers, over STARTTLS and over smtps://; a wrong password defers."""
import os
import re
import smtplib

import pytest

from certs import CertAuthority
from conftest import wait_until
from nexthop import NextHop
from postfix_relay import PostfixRelay, available

pytestmark = pytest.mark.skipif(not available(), reason="needs root, postfix and Cyrus SASL")

USER, PASSWORD = "mtaduser", "Relay-Pa55"


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    d = tmp_path_factory.mktemp("pfrelay")
    ca = CertAuthority(d / "ca")
    key, cert = ca.issue(d / "tls", "relay", cn="relay.test")
    with NextHop("127.0.0.1") as sink:
        with PostfixRelay(d / "pf", cert, key, sink.port, {USER: PASSWORD}) as pf:
            yield ca, pf, sink


def _mtad(mtad_factory, tmp_path, ca, relay_spec, password=PASSWORD):
    keys = tmp_path / "keys"
    keys.mkdir()
    os.chmod(keys, 0o755)
    (keys / "relay.pw").write_text(password + "\n")
    os.chmod(keys / "relay.pw", 0o600)
    return mtad_factory(conf={"smart_relay": relay_spec, "key_dir": str(keys),
                              "smart_relay_username": USER + "@relay.test",
                              "smart_relay_password_file": "relay.pw"},
                        env={"SSL_CERT_FILE": ca.cert})


def _send(m, sender, rcpt="dest@far.example"):
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
        c.sendmail(sender, [rcpt], b"Subject: via postfix\r\n\r\nhello\r\n")


def _delivered(m, pf, sink, sender, mech):
    wait_until(lambda: any(x.sender == sender for x in sink.messages), 30,
               what="the message at the sink behind Postfix")
    log = pf.log()
    assert re.search(r"sasl_method=%s, sasl_username=%s@relay\.test" % (mech, USER), log), log
    assert wait_until(lambda: re.search(r"to=<dest@far\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]"
                                        r":\d+, .*status=sent \(250 ", m.maillog()), 10)
    assert PASSWORD not in m.maillog() + m.read_stderr()


def test_plain_over_starttls(mtad_factory, tmp_path, relay):
    ca, pf, sink = relay
    m = _mtad(mtad_factory, tmp_path, ca, "[127.0.0.1]:%d" % pf.starttls_port)
    _send(m, "plain@src.example")
    _delivered(m, pf, sink, "plain@src.example", "PLAIN")


def test_login_when_only_login_is_offered(mtad_factory, tmp_path, relay):
    ca, pf, sink = relay
    m = _mtad(mtad_factory, tmp_path, ca, "[127.0.0.1]:%d" % pf.login_port)
    _send(m, "login@src.example")
    _delivered(m, pf, sink, "login@src.example", "LOGIN")


def test_smtps_wrappermode(mtad_factory, tmp_path, relay):
    ca, pf, sink = relay
    m = _mtad(mtad_factory, tmp_path, ca, "smtps://127.0.0.1:%d" % pf.smtps_port)
    _send(m, "smtps@src.example")
    _delivered(m, pf, sink, "smtps@src.example", "PLAIN")
    assert "Trusted TLS connection established to 127.0.0.1[127.0.0.1]:%d" % pf.smtps_port \
        in m.maillog()


def test_wrong_password_defers(mtad_factory, tmp_path, relay):
    ca, pf, sink = relay
    m = _mtad(mtad_factory, tmp_path, ca, "[127.0.0.1]:%d" % pf.starttls_port,
              password="not-the-password")
    _send(m, "wrong@src.example")
    assert wait_until(lambda: "status=deferred" in m.maillog(), 30, what="deferral")
    log = m.maillog()
    assert re.search(r"dsn=4\.7\.8, status=deferred \(SASL authentication failed; server "
                     r"127\.0\.0\.1\[127\.0\.0\.1\]:%d said: 535 5\.7\.8 Error: authentication "
                     r"failed" % pf.starttls_port, log), log
    assert "status=bounced" not in log and len(m.queue_files()) == 1
    assert not any(x.sender == "wrong@src.example" for x in sink.messages)
    assert "not-the-password" not in log + m.read_stderr()
