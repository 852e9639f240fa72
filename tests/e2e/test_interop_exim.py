"""Interoperability with Exim (exim4-daemon-light from Debian, unpacked, a
private daemon on loopback; see peers.py): mtad relays to Exim over STARTTLS
(smart_relay_tls = encrypt, Exim's certificate verified), 8BITMIME and
SMTPUTF8 messages pass unchanged, and a recipient Exim refuses with 5xx
comes back to the sender as mtad's DSN (through Exim too).

The path: this test -> mtad -> Exim -> the tests' next hop (nexthop.py).
Skipped, with the reason, where Exim is not unpacked or cannot run
(tools/peers_setup.sh unpacks it).
"""
import re

import pytest

from certs import CertAuthority
from conftest import wait_until
from interop import by_rcpt, check_8bit, check_utf8, dsn_for, received_by, send_8bit, \
    send_plain, send_utf8
from nexthop import NextHop
from peers import EximPeer, skip_reason

_WHY = skip_reason("exim")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=str(_WHY))


@pytest.fixture
def chain(mtad_factory, tmp_path):
    """(exim, mtad, next hop): mtad relays to Exim, Exim to the next hop."""
    nh = NextHop("127.0.0.1", name="nexthop.test").start()
    ca = CertAuthority(tmp_path / "ca")
    ex = EximPeer(tmp_path / "exim", relay_port=nh.port, ca=ca, reject=["reject@dst.example"])
    try:
        ex.start()
        m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:%d" % ex.port,
                               "smart_relay_tls": "encrypt", "retry_min_backoff": "1s",
                               "retry_max_backoff": "2s"},
                         env={"SSL_CERT_FILE": ca.cert})
        yield ex, m, nh
    finally:
        ex.stop()
        nh.stop()


def test_mtad_exim_tls_8bitmime_smtputf8(chain):
    ex, m, nh = chain
    send_8bit(m.smtp_port, "alice@src.example", "bob@dst.example", "ex8bit")
    rcpt = send_utf8(m.smtp_port, "dst.example", "exutf8")
    msg8 = by_rcpt(nh, "bob@dst.example")[0]
    msgu = by_rcpt(nh, rcpt)[0]
    check_8bit(msg8, body_param=False)
    check_utf8(msgu, rcpt)
    for msg in (msg8, msgu):
        theirs = received_by(msg.data, "exim.test")
        assert len(theirs) == 1 and "(helo=mx.test.example)" in theirs[0], theirs
        assert re.search(r"with (UTF8)?ESMTPS", theirs[0], re.I), theirs[0]
        assert len(received_by(msg.data, "mx.test.example")) == 1
    # mtad verified Exim's certificate; Exim logged both arrivals as TLS
    assert wait_until(lambda: re.search(
        r"Trusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]"
        % ex.port, m.maillog()), 10, what="mtad's Trusted TLS line")
    # and mtad said BODY=8BITMIME to Exim (M8S=8) for both
    arrivals = wait_until(lambda: len(re.findall(r" <= .* P=(utf8)?esmtps X=TLS1\.[23]:.* M8S=8 ",
                                                 ex.mainlog())) == 2 and ex.mainlog(),
                          10, what="Exim's two TLS arrivals with BODY=8BITMIME")
    assert re.search(r" <= %s .* P=utf8esmtps X=TLS" % re.escape("jörg@src.example"), arrivals), \
        arrivals
    # mtad ends its TLS sessions with a close_notify: no truncation seen by Exim
    m.stop()
    assert "TLS error" not in ex.mainlog(), ex.mainlog()[-2000:]


def test_exim_refuses_recipient_mtad_bounces(chain):
    ex, m, nh = chain
    refused = send_plain(m.smtp_port, "alice@src.example",
                         ["ok@dst.example", "reject@dst.example"], "exbounce")
    assert not refused
    assert by_rcpt(nh, "ok@dst.example")[0].sender == "alice@src.example"
    dsn = dsn_for(nh, "alice@src.example", "reject@dst.example",
                  "550 5.1.1 <reject@dst.example>: no such user")
    assert received_by(dsn.data, "exim.test"), "the DSN went through Exim"
    line = [x for x in m.maillog().splitlines() if "to=<reject@dst.example>" in x][0]
    assert "status=bounced" in line and "dsn=5.1.1" in line, line
    assert re.search(r"rejected RCPT <reject@dst\.example>", ex.mainlog()), ex.mainlog()[-2000:]
