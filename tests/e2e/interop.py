"""interop.py - messages and checks shared by test_interop_postfix.py and
test_interop_exim.py (mtad between real MTAs; see peers.py)."""
import email
import email.policy
import smtplib

from conftest import wait_until

__all__ = ["EIGHTBIT_BODY", "UTF8_SENDER", "UTF8_RCPT", "send_8bit", "send_utf8",
           "send_plain", "by_rcpt", "check_8bit", "check_utf8", "dsn_for", "received_by"]

# 8-bit octets in the body (not valid ASCII): they must arrive unchanged.
EIGHTBIT_BODY = "Grüße aus Köln – ça va? ½ € ✓\r\nZweite Zeile: Ærøskøbing\r\n".encode()
UTF8_SENDER = "jörg@src.example"
UTF8_RCPT = "δοκιμή@%s"
UTF8_SUBJECT = "Grüße, δοκιμή"


def _smtp(port):
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    s.ehlo("client.example")
    return s


def send_8bit(port, sender, rcpt, tag):
    """A BODY=8BITMIME message with raw UTF-8 octets in its body."""
    msg = (("From: <%s>\r\nTo: <%s>\r\nSubject: 8bit %s\r\nX-Test-Id: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" % (sender, rcpt, tag, tag)).encode()
           + EIGHTBIT_BODY)
    with _smtp(port) as s:
        assert s.has_extn("8bitmime"), "no 8BITMIME offered on %d" % port
        refused = s.sendmail(sender, [rcpt], msg, mail_options=["BODY=8BITMIME"])
    assert not refused, refused
    return msg


def send_utf8(port, domain, tag):
    """An SMTPUTF8 message: UTF-8 envelope addresses and a raw UTF-8 Subject."""
    rcpt = UTF8_RCPT % domain
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nX-Test-Id: %s\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n" % (UTF8_SENDER, rcpt, UTF8_SUBJECT, tag)
           ).encode() + EIGHTBIT_BODY
    with _smtp(port) as s:
        assert s.has_extn("smtputf8"), "no SMTPUTF8 offered on %d" % port
        refused = s.sendmail(UTF8_SENDER, [rcpt], msg,
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert not refused, refused
    return rcpt


def send_plain(port, sender, rcpts, tag):
    """A plain message to several recipients; returns smtplib's refused dict."""
    msg = ("From: <%s>\r\nTo: %s\r\nSubject: plain %s\r\nX-Test-Id: %s\r\n\r\nHello.\r\n"
           % (sender, ", ".join("<%s>" % r for r in rcpts), tag, tag)).encode()
    with _smtp(port) as s:
        return s.sendmail(sender, rcpts, msg)


def by_rcpt(nh, rcpt, n=1, timeout=60):
    """The messages the next hop accepted for rcpt (waits for n of them)."""
    def have():
        with nh._lock:
            got = [x for x in nh.messages if rcpt in x.rcpts]
        return got if len(got) >= n else None
    return wait_until(have, timeout, interval=0.05, what="%d message(s) for %s at the next hop"
                      % (n, rcpt))


def received_by(data, host):
    """The Received: header fields written by host (unfolded), newest first."""
    p = email.message_from_bytes(data, policy=email.policy.compat32)
    out = []
    for v in p.get_all("Received") or []:
        v = " ".join(str(v).split())
        if "by %s" % host in v:
            out.append(v)
    return out


def check_8bit(msg, body_param=True):
    """The 8-bit body arrived octet for octet (announced as BODY=8BITMIME
    unless body_param is false: Exim does not pass the parameter on)."""
    assert msg.data.endswith(EIGHTBIT_BODY), msg.data[-300:]
    if body_param:
        assert msg.mail_params.get("BODY", "").upper() == "8BITMIME", msg.mail_params


def check_utf8(msg, rcpt):
    assert msg.sender == UTF8_SENDER, msg.sender
    assert msg.rcpts == [rcpt], msg.rcpts
    assert "SMTPUTF8" in {k.upper() for k in msg.mail_params}, msg.mail_params
    assert ("Subject: %s" % UTF8_SUBJECT).encode() in msg.data
    assert msg.data.endswith(EIGHTBIT_BODY)


def dsn_for(nh, sender, failed_rcpt, diag, timeout=60):
    """Wait for mtad's DSN to sender about failed_rcpt; check its fields."""
    def have():
        with nh._lock:
            got = [x for x in nh.messages if x.sender == "" and sender in x.rcpts]
        return got or None
    msg = wait_until(have, timeout, interval=0.05, what="a DSN to %s" % sender)[0]
    p = email.message_from_bytes(msg.data, policy=email.policy.compat32)
    assert p.get_content_type() == "multipart/report", p.get_content_type()
    assert p.get_param("report-type") == "delivery-status"
    status = p.get_payload()[1].get_payload()
    blocks = [b for b in status if b.get("Final-Recipient")]
    assert len(blocks) == 1, [dict(b) for b in status]
    b = blocks[0]
    assert b["Final-Recipient"].replace(" ", "").lower() == "rfc822;" + failed_rcpt
    assert b["Action"] == "failed"
    assert b["Status"].startswith("5."), b["Status"]
    assert diag in " ".join(b["Diagnostic-Code"].split()), b["Diagnostic-Code"]
    return msg
