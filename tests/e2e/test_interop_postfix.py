"""Interoperability with Postfix (Debian's package, a private instance; see
peers.py): Postfix sends to mtad and mtad relays to Postfix, STARTTLS with
verified certificates both ways, 8BITMIME and SMTPUTF8 messages, and a
recipient Postfix refuses with 5xx coming back to the sender as mtad's DSN.

The path of a message: this test -> Postfix ("in" listener; the domain
via-mtad.example is routed to mtad, TLS required and verified) -> mtad
(smart_relay to Postfix's "relay" listener, smart_relay_tls = encrypt, the
CA trusted) -> Postfix -> the next hop of the tests (nexthop.py), which
records what arrived. Skipped, with the reason, where Postfix cannot run.
"""
import re

import pytest

from conftest import wait_until
from interop import by_rcpt, check_8bit, check_utf8, dsn_for, received_by, send_8bit, \
    send_plain, send_utf8
from nexthop import NextHop
from peers import PostfixPeer, skip_reason
from tls_fixture import tls_mtad

pytestmark = pytest.mark.skipif(skip_reason("postfix") is not None,
                                reason=str(skip_reason("postfix")))

VIA = "via-mtad.example"


@pytest.fixture
def chain(mtad_factory, tmp_path):
    """(postfix, mtad, next hop), started and wired as described above."""
    nh = NextHop("127.0.0.1", name="nexthop.test").start()
    m = tls_mtad(mtad_factory, tmp_path, start=False,
                 env={"SSL_CERT_FILE": str(tmp_path / "ca" / "ca.pem")})
    pf = PostfixPeer(tmp_path / "postfix", relayhost="[127.0.0.1]:%d" % nh.port, ca=m.ca,
                     via={VIA: "[127.0.0.1]:%d" % m.smtp_port},
                     secure={"[127.0.0.1]:%d" % m.smtp_port: "mx.test.example"},
                     reject=["reject@dst.example"])
    m.conf.update({"smart_relay": "[127.0.0.1]:%d" % pf.ports["relay"],
                   "smart_relay_tls": "encrypt", "retry_min_backoff": "1s",
                   "retry_max_backoff": "2s"})
    m.write_conf()
    try:
        pf.start()
        m.start()
        yield pf, m, nh
    finally:
        pf.stop()
        nh.stop()


def test_postfix_mtad_postfix_tls_8bitmime_smtputf8(chain):
    pf, m, nh = chain
    send_8bit(pf.ports["in"], "alice@src.example", "bob@" + VIA, "pf8bit")
    rcpt = send_utf8(pf.ports["in"], VIA, "pfutf8")
    msg8 = by_rcpt(nh, "bob@" + VIA)[0]
    msgu = by_rcpt(nh, rcpt)[0]
    check_8bit(msg8)
    check_utf8(msgu, rcpt)
    for msg in (msg8, msgu):
        # mtad received it from Postfix over TLS, and Postfix from mtad again
        mine = received_by(msg.data, "mx.test.example")
        assert len(mine) == 1 and " with ESMTPS" in mine[0], mine
        theirs = received_by(msg.data, "postfix.test")
        assert len(theirs) == 2, theirs
        assert "from mx.test.example" in theirs[0] and "(using TLS" in theirs[0], theirs[0]
    # Postfix verified mtad's certificate; mtad verified Postfix's
    log = wait_until(lambda: re.search(
        r"Verified TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]"
        % m.smtp_port, pf.maillog()), 10, what="Postfix's Verified TLS line")
    assert log
    assert wait_until(lambda: re.search(
        r"Trusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]"
        % pf.ports["relay"], m.maillog()), 10, what="mtad's Trusted TLS line")
    assert "Anonymous TLS connection established from unknown[127.0.0.1]" in m.maillog()
    assert len(re.findall(r"status=sent", m.maillog())) == 2


def test_postfix_refuses_recipient_mtad_bounces(chain):
    pf, m, nh = chain
    refused = send_plain(m.smtp_port, "alice@src.example",
                         ["ok@dst.example", "reject@dst.example"], "pfbounce")
    assert not refused
    assert by_rcpt(nh, "ok@dst.example")[0].sender == "alice@src.example"
    dsn = dsn_for(nh, "alice@src.example", "reject@dst.example",
                  "550 5.1.1 <reject@dst.example>: Recipient address rejected: no such user")
    # the DSN too went through Postfix over TLS
    assert received_by(dsn.data, "postfix.test")
    line = [x for x in m.maillog().splitlines() if "to=<reject@dst.example>" in x][0]
    assert "status=bounced" in line and "dsn=5.1.1" in line, line
    assert re.search(r": reject: RCPT from \S+\[127\.0\.0\.1\]: 550 5\.1\.1 "
                     r"<reject@dst\.example>", pf.maillog()), pf.maillog()[-3000:]
