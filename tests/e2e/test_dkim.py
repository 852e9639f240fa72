"""DKIM signing end to end (SPEC §11.3 dkim_key_table).

mtad relays to a NextHop sink through smart_relay; every message that
arrives signed is verified by two independent verifiers:

- dkimpy (Debian python3-dkim), with a dnsfunc that returns the published
  record (the text `mtactl dkim-record` prints);
- OpenDKIM's own library, through `opendkim -t FILE` (test mode) with a
  configuration whose TestPublicKeys file holds the same records.

Debian 12's OpenDKIM (2.11.0~beta2) verifies ed25519-sha256 signatures;
both verifiers must say "pass" for every signature, RSA and Ed25519.
"""
import os
import re
import smtplib
import subprocess
import sys

import pytest

from conftest import BIN_DIR, wait_until
from nexthop import NextHop
from tls_fixture import open_for_reload

DEADLINE = 20
PY = "/usr/bin/python3"      # the Debian interpreter, which has python3-dkim

VERIFY_PY = r"""
import sys, dkim
records = {}
for line in open(sys.argv[1], "rb"):
    name, _, txt = line.rstrip(b"\n").partition(b" ")
    records[name] = txt
def dnsfunc(name, timeout=5):
    return records.get(name.rstrip(b"."), None)
msg = open(sys.argv[2], "rb").read()
d = dkim.DKIM(msg)
n = len([1 for l in msg.split(b"\r\n\r\n")[0].split(b"\r\n") if l.lower().startswith(b"dkim-signature:")])
res = []
for i in range(n):
    ok = d.verify(idx=i, dnsfunc=dnsfunc)
    res.append("%s=%s" % (d.signature_fields.get(b"a", b"?").decode(), "pass" if ok else "fail"))
print(" ".join(res))
"""


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def keys(tmp_path):
    """A key store with RSA-2048 and Ed25519 keys for example.com, RSA only for rsa.test."""
    kd = tmp_path / "keys"
    (kd / "dkim").mkdir(parents=True)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(kd / "dkim" / "ex-rsa.pem"))
    openssl("genpkey", "-algorithm", "ED25519", "-out", str(kd / "dkim" / "ex-ed.pem"))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
            "-out", str(kd / "dkim" / "rsa-test.pem"))
    (kd / "dkim" / "keytable").write_text(
        "# domain selector key\n"
        "example.com   r2026  dkim/ex-rsa.pem\n"
        "Example.COM   e2026  dkim/ex-ed.pem   # both signatures\n"
        "\n"
        "rsa.test      sel1   dkim/rsa-test.pem\n")
    for p in kd.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(kd, 0o755)
    return kd


@pytest.fixture
def sink():
    nh = NextHop("127.0.0.1", 0, name="sink.test")
    nh.smtputf8 = True
    nh.start()
    yield nh
    nh.stop()


def start(mtad_factory, keys, sink, **extra):
    conf = {"key_dir": str(keys), "dkim_key_table": "dkim/keytable",
            "smart_relay": "[127.0.0.1]:%d" % sink.port}
    conf.update(extra)
    return mtad_factory(conf=conf)


def records_file(m, tmp_path, domains=("example.com", "rsa.test")):
    """`mtactl dkim-record` for each domain, as "NAME TXT" lines for the verifiers."""
    out = []
    for d in domains:
        p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "-c", m.conf_path, "dkim-record", d],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        for line in p.stdout.splitlines():
            mm = re.match(r'^(\S+)\. IN TXT \( (.*) \)$', line)
            assert mm, line
            txt = "".join(re.findall(r'"([^"]*)"', mm.group(2)))
            out.append("%s %s" % (mm.group(1), txt))
    path = tmp_path / "records"
    path.write_text("\n".join(out) + "\n")
    return path


def dkimpy_verify(records, msgpath):
    p = subprocess.run([PY, "-c", VERIFY_PY, str(records), str(msgpath)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def opendkim_verify(tmp_path, records, msgpath):
    """OpenDKIM's library in test mode: one line per signature, pass or fail."""
    keys = tmp_path / "opendkim.keys"
    with open(records) as f, open(keys, "w") as o:
        for line in f:
            name, txt = line.rstrip("\n").split(" ", 1)
            o.write("%s %s\n" % (name, txt))
    conf = tmp_path / "opendkim.conf"
    conf.write_text("Mode v\nTestPublicKeys %s\nAlwaysAddARHeader yes\n"
                    "Syslog no\nLogResults yes\nAuthservID test\n" % keys)
    p = subprocess.run(["opendkim", "-x", str(conf), "-vvv", "-t", str(msgpath)],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def send(m, sender, rcpts, data, **kw):
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=DEADLINE) as s:
        s.ehlo("client.test")
        s.sendmail(sender, rcpts, data, **kw)


def received(sink, n, tmp_path):
    msgs = sink.wait_for(n, DEADLINE)
    paths = []
    for i, msg in enumerate(msgs):
        p = tmp_path / ("msg%d.eml" % i)
        p.write_bytes(msg.data)
        paths.append(p)
    return msgs, paths


MESSAGES = {
    "plain": (b"From: Alice <alice@example.com>\r\nTo: bob@dest.test\r\n"
              b"Subject: hello\r\n\r\nHello Bob.\r\n", {}),
    "no trailing empty line, trailing blanks": (
        b"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: blanks  \r\n\r\n"
        b"line with trailing blanks   \r\n\tindented\t\tline\r\nlast", {}),
    "trailing empty lines": (b"From: alice@example.com\r\nTo: bob@dest.test\r\n\r\n"
                             b"body\r\n\r\n\r\n  \r\n\r\n", {}),
    "empty body": (b"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: empty\r\n\r\n", {}),
    "long folded headers": (
        b"From: \"A very long display name, that is quoted\"\r\n <alice@sub.example.com>\r\n"
        b"To: " + b",\r\n\t".join(b"user%d@dest.test" % i for i in range(40)) + b"\r\n"
        b"Subject: " + b" ".join(b"word%d" % i for i in range(60)) + b"\r\n"
        b"X-Unsigned: \r\n  folded\r\n\r\nbody\r\n", {}),
    "8bit": ("From: Jörg <joerg@example.com>\r\nTo: bob@dest.test\r\n"
             "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
             "Grüße aus Köln.\r\n".encode(), {"mail_options": ["BODY=8BITMIME"]}),
    "smtputf8": ("From: Jörg <jörg@example.com>\r\nTo: bøb@dest.test\r\n"
                 "Subject: Grüße\r\n\r\nGrüße.\r\n".encode(), {"mail_options": ["SMTPUTF8"]}),
    "dot lines": (b"From: alice@example.com\r\nTo: bob@dest.test\r\n\r\n.\r\n..\r\n.x\r\n", {}),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_signed_messages_verify(mtad_factory, keys, sink, tmp_path, name):
    data, kw = MESSAGES[name]
    m = start(mtad_factory, keys, sink)
    rcpt = "bøb@dest.test" if name == "smtputf8" else "bob@dest.test"
    send(m, "alice@example.com" if name != "smtputf8" else "jörg@example.com", [rcpt], data, **kw)
    msgs, paths = received(sink, 1, tmp_path)
    raw = msgs[0].data
    assert raw.startswith(b"DKIM-Signature: "), raw[:300]
    sigs = re.findall(rb"(?m)^DKIM-Signature:", raw.split(b"\r\n\r\n")[0])
    assert len(sigs) == 2
    assert b"a=rsa-sha256;" in raw and b"a=ed25519-sha256;" in raw
    assert b"d=example.com;" in raw
    assert re.search(rb"h=from:from:", raw), raw[:400]
    recs = records_file(m, tmp_path)
    assert dkimpy_verify(recs, paths[0]) == ["rsa-sha256=pass", "ed25519-sha256=pass"]
    rc, out = opendkim_verify(tmp_path, recs, paths[0])
    assert rc == 0, out
    assert out.count("dkim=pass") == 2 and "dkim=fail" not in out, out
    assert "header.a=rsa-sha256" in out and "header.a=ed25519-sha256" in out, out
    assert "DKIM-Signature field added (d=example.com)" in m.maillog()


def test_rsa_only_domain_and_bdat(mtad_factory, keys, sink, tmp_path):
    """A domain with one RSA-1024 key: one signature; content through BDAT."""
    m = start(mtad_factory, keys, sink)
    import socket
    body = (b"From: x@rsa.test\r\nTo: bob@dest.test\r\nSubject: chunks\r\n\r\n"
            b"chunk one\r\n" * 50)
    with socket.create_connection(("127.0.0.1", m.smtp_port), timeout=DEADLINE) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO c.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(b"MAIL FROM:<x@rsa.test>\r\nRCPT TO:<bob@dest.test>\r\n")
        assert f.readline().startswith(b"250")
        assert f.readline().startswith(b"250")
        half = len(body) // 2
        s.sendall(b"BDAT %d\r\n" % half + body[:half])
        assert f.readline().startswith(b"250")
        s.sendall(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
        assert f.readline().startswith(b"250")
        s.sendall(b"QUIT\r\n")
    msgs, paths = received(sink, 1, tmp_path)
    raw = msgs[0].data
    assert len(re.findall(rb"(?m)^DKIM-Signature:", raw)) == 1
    assert b"d=rsa.test;" in raw and b"s=sel1;" in raw
    recs = records_file(m, tmp_path)
    assert dkimpy_verify(recs, paths[0]) == ["rsa-sha256=pass"]
    rc, out = opendkim_verify(tmp_path, recs, paths[0])
    assert rc == 0 and out.count("dkim=pass (1024-bit key)") == 1, out


@pytest.mark.parametrize("frm", [
    b"From: someone@other.test",          # not in the table
    b"From: a@notexample.com",            # a suffix, not a subdomain
    b"From: a@example.com, b@example.com",  # not one author
    b"X-No-From: yes",
])
def test_not_signed(mtad_factory, keys, sink, tmp_path, frm):
    m = start(mtad_factory, keys, sink)
    send(m, "a@other.test", ["bob@dest.test"], frm + b"\r\nSubject: x\r\n\r\nbody\r\n")
    msgs, _ = received(sink, 1, tmp_path)
    assert b"DKIM-Signature" not in msgs[0].data
    assert msgs[0].data.startswith(b"Received: ")


def test_bad_key_is_startup_error(mtad_factory, keys, sink):
    (keys / "dkim" / "broken.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n"
                                             "-----END PRIVATE KEY-----\n")
    (keys / "dkim" / "keytable").write_text("example.com s1 dkim/broken.pem\n")
    m = mtad_factory(conf={"key_dir": str(keys), "dkim_key_table": "dkim/keytable"}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0
    assert "Error: failed to pre-configure MTA: dkim_key_table dkim/keytable line 1: " \
           "dkim/broken.pem: not a PEM private key" in err, err
    r = m.run_check()
    assert r.returncode != 0 and "dkim/broken.pem" in r.stderr


def test_reload_on_sighup(mtad_factory, keys, sink, tmp_path):
    m = start(mtad_factory, keys, sink)
    send(m, "a@other.test", ["bob@dest.test"], b"From: a@new.test\r\n\r\nbody\r\n")
    openssl("genpkey", "-algorithm", "ED25519", "-out", str(keys / "dkim" / "new.pem"))
    os.chmod(keys / "dkim" / "new.pem", 0o644)
    with open(keys / "dkim" / "keytable", "a") as f:
        f.write("new.test n1 dkim/new.pem\n")
    import signal
    open_for_reload(m)       # another pytest run on the machine may have reset pytest-of-root to 0700
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "DKIM: 4 key(s) loaded" in m.read_stderr(), DEADLINE,
               what="reload; stderr: %s" % m.read_stderr()[-1500:])
    send(m, "a@other.test", ["bob@dest.test"], b"From: a@new.test\r\n\r\nbody\r\n")
    msgs, paths = received(sink, 2, tmp_path)
    assert b"DKIM-Signature" not in msgs[0].data
    assert b"d=new.test;" in msgs[1].data
    recs = records_file(m, tmp_path, domains=("new.test",))
    assert dkimpy_verify(recs, paths[1]) == ["ed25519-sha256=pass"]
    # a broken table on reload keeps the running keys
    (keys / "dkim" / "keytable").write_text("bad line\n")
    open_for_reload(m)
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "DKIM: keeping the current keys" in m.read_stderr(), DEADLINE)
    send(m, "a@other.test", ["bob@dest.test"], b"From: a@new.test\r\n\r\nbody\r\n")
    msgs, _ = received(sink, 3, tmp_path)
    assert b"d=new.test;" in msgs[2].data


def test_dkim_record_output(mtad_factory, keys, sink):
    m = start(mtad_factory, keys, sink, )
    p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "-c", m.conf_path, "dkim-record",
                        "example.com"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith('r2026._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; " "p=MII')
    assert lines[1].startswith('e2026._domainkey.example.com. IN TXT ( "v=DKIM1; k=ed25519; " "p=')
    p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "-c", m.conf_path, "dkim-record",
                        "nokey.test"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "no DKIM key for nokey.test" in p.stderr
