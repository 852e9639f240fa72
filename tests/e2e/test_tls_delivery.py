"""Outbound TLS (SPEC §5, issue 4): opportunistic STARTTLS to the next hop,
the Trusted/Untrusted log line, SNI, the plain fallback after a failed
handshake, the client-side injection defence, and smart_relay_tls = encrypt."""
import re
import smtplib
import ssl

from certs import CertAuthority
from conftest import wait_until
from fakedns import FakeDNS
from nexthop import NextHop


def _server_ctx(ca, d, name="relay.test", max_version=None):
    key, cert = ca.issue(d, "nexthop", cn=name)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if max_version is not None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    return ctx


def _send(m, rcpt="user@dest.example", body=b"hello\r\n"):
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
        c.sendmail("sender@src.example", [rcpt], b"Subject: t\r\n\r\n" + body)


def _relay(nh):
    return "[127.0.0.1]:%d" % nh.port


def test_starttls_to_next_hop_trusted(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    with NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh")) as nh:
        m = mtad_factory(conf={"smart_relay": _relay(nh)}, env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        msg = nh.wait_for(1, timeout=20)[0]
        assert msg.tls, "message did not arrive over TLS"
        assert msg.esmtp
        # EHLO again after TLS (RFC 3207 §4.2)
        assert nh.verbs().count("EHLO") == 2 and "STARTTLS" in nh.verbs()
        log = wait_until(lambda: re.search(
            r"mtad/smtp\[\d+\]: Trusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:"
            r"%d: TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\)" % nh.port, m.maillog()), 10,
            what="Trusted TLS line")
        assert log
        assert wait_until(lambda: "status=sent" in m.maillog(), 10)


def test_untrusted_without_the_ca_still_encrypts(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    with NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh")) as nh:
        m = mtad_factory(conf={"smart_relay": _relay(nh)},
                         env={"SSL_CERT_FILE": str(tmp_path / "none.pem")})
        _send(m)
        assert nh.wait_for(1, timeout=20)[0].tls
        assert wait_until(lambda: "Untrusted TLS connection established to 127.0.0.1[" in
                          m.maillog(), 10, what="Untrusted TLS line")


def test_sni_is_the_mx_host_name(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    with NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh", "mx.dest.test")) as nh, \
            FakeDNS({"dest.test": {"MX": [(10, "mx.dest.test")]},
                     "mx.dest.test": {"A": ["127.0.0.1"]}}) as dns:
        m = mtad_factory(conf={"dns_servers": "127.0.0.1:%d" % dns.port,
                               "relay_smtp_port": str(nh.port)},
                         env={"SSL_CERT_FILE": ca.cert})
        _send(m, rcpt="someone@dest.test")
        assert nh.wait_for(1, timeout=20)[0].tls
        assert nh.sni == ["mx.dest.test"], nh.sni
        assert wait_until(lambda: "Trusted TLS connection established to mx.dest.test[127.0.0.1]:%d"
                          % nh.port in m.maillog(), 10)


def test_failed_handshake_falls_back_to_plain(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    # the next hop speaks TLS 1.1 at most: mtad (TLS 1.2+) cannot agree with it
    ctx = _server_ctx(ca, tmp_path / "nh", max_version=ssl.TLSVersion.TLSv1_1)
    with NextHop("127.0.0.1", tls_context=ctx) as nh:
        m = mtad_factory(conf={"smart_relay": _relay(nh)})
        _send(m)
        msg = nh.wait_for(1, timeout=20)[0]
        assert not msg.tls
        log = m.maillog()
        assert "Cannot start TLS: handshake failure with 127.0.0.1[127.0.0.1]:%d" % nh.port in log, log
        assert "trying 127.0.0.1[127.0.0.1]:%d again without TLS" % nh.port in log, log
        assert "status=sent" in wait_until(lambda: m.maillog() if "status=sent" in m.maillog()
                                           else None, 10)
        # remembered: the next message goes in the clear at once, no second handshake
        starttls_before = nh.verbs().count("STARTTLS")
        _send(m)
        nh.wait_for(2, timeout=20)
        assert nh.verbs().count("STARTTLS") == starttls_before
        assert m.maillog().count("again without TLS") == 1


def test_reply_injected_before_handshake_is_dropped(mtad_factory, tmp_path):
    """CVE-2021-38371 class: bytes behind the 220 must not be read as replies."""
    ca = CertAuthority(tmp_path / "ca")
    with NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh")) as nh:
        nh.starttls_inject = b"250-injected\r\n250 2.0.0 injected\r\n"
        m = mtad_factory(conf={"smart_relay": _relay(nh)})
        _send(m)
        msg = nh.wait_for(1, timeout=20)[0]
        assert msg.tls
        log = m.maillog()
        assert "protocol error" not in log and "injected" not in log, log


def test_encrypt_defers_when_relay_has_no_starttls(mtad_factory, tmp_path):
    with NextHop("127.0.0.1") as nh:
        m = mtad_factory(conf={"smart_relay": _relay(nh), "smart_relay_tls": "encrypt"})
        _send(m)
        assert wait_until(lambda: "status=deferred" in m.maillog(), 20, what="deferral")
        log = m.maillog()
        assert "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]:%d" \
            % nh.port in log, log
        assert "MAIL" not in nh.verbs() and nh.messages == []
        assert len(m.queue_files()) >= 1


def test_encrypt_defers_when_handshake_fails(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    ctx = _server_ctx(ca, tmp_path / "nh", max_version=ssl.TLSVersion.TLSv1_1)
    with NextHop("127.0.0.1", tls_context=ctx) as nh:
        m = mtad_factory(conf={"smart_relay": _relay(nh), "smart_relay_tls": "encrypt"})
        _send(m)
        assert wait_until(lambda: "status=deferred" in m.maillog(), 20, what="deferral")
        log = m.maillog()
        assert "TLS is required" in log and "again without TLS" not in log, log
        assert "MAIL" not in nh.verbs() and nh.messages == []


def test_encrypt_delivers_over_tls(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    with NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh")) as nh:
        m = mtad_factory(conf={"smart_relay": _relay(nh), "smart_relay_tls": "encrypt"})
        _send(m)
        assert nh.wait_for(1, timeout=20)[0].tls
        assert wait_until(lambda: "status=sent" in m.maillog(), 10)


def test_starttls_refused_goes_on_in_the_clear(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    with NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh")) as nh:
        nh.reply_at("STARTTLS", "454 4.7.0 TLS not available due to local problem")
        m = mtad_factory(conf={"smart_relay": _relay(nh)})
        _send(m)
        msg = nh.wait_for(1, timeout=20)[0]
        assert not msg.tls
        assert wait_until(lambda: "refused to start TLS: 454 4.7.0" in m.maillog(), 10)


def test_encrypt_defers_when_starttls_refused(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    with NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh")) as nh:
        nh.reply_at("STARTTLS", "454 4.7.0 TLS not available due to local problem")
        m = mtad_factory(conf={"smart_relay": _relay(nh), "smart_relay_tls": "encrypt"})
        _send(m)
        assert wait_until(lambda: "status=deferred" in m.maillog(), 20, what="deferral")
        assert "TLS is required, but host 127.0.0.1[127.0.0.1]:%d refused to start TLS" \
            % nh.port in m.maillog()
        assert "MAIL" not in nh.verbs() and nh.messages == []
