"""Upstream relays as hosted providers need them (SPEC §11.2), against scripted
next hops (nexthop.py): SMTP AUTH (PLAIN, LOGIN, XOAUTH2 with the token file
re-read), the fault cases (AUTH offered without TLS, 535, 454, a drop in the
middle of AUTH) that defer and never bounce, implicit TLS (smtps://),
smart_relay_tls = verify with the right and the wrong name, sender_relay_map
(two senders, two relays, reloaded on SIGHUP) and the masked -t --print.
test_relay_postfix.py does the same against a real Postfix with Cyrus SASL."""
import os
import re
import signal
import smtplib
import ssl
import subprocess

from certs import CertAuthority
from conftest import BIN_DIR, wait_until
from fakedns import FakeDNS
from nexthop import NextHop

MTACTL = os.path.join(BIN_DIR, "mtactl")
SECRET = "pa55-W0rd-never-logged"


def _server_ctx(ca, d, name="relay.test", sans=None):
    key, cert = ca.issue(d, "nexthop", cn=name, sans=sans)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _keys(tmp_path, files):
    """A key store with files {name: text}; returns its path."""
    d = tmp_path / "keys"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    for name, text in files.items():
        p = d / name
        p.write_text(text)
        os.chmod(p, 0o600)
    return str(d)


def _send(m, sender="sender@src.example", rcpt="user@dest.example"):
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as c:
        c.sendmail(sender, [rcpt], b"Subject: t\r\n\r\nhello\r\n")


def _auth_relay(tmp_path, mechs=("PLAIN", "LOGIN"), **kw):
    ca = CertAuthority(tmp_path / "ca")
    nh = NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh"), **kw)
    nh.auth_mechs = list(mechs)
    nh.auth_users = {"relayuser": SECRET}
    return ca, nh


def _auth_conf(nh, keys, **extra):
    conf = {"smart_relay": "[127.0.0.1]:%d" % nh.port, "key_dir": keys,
            "smart_relay_username": "relayuser", "smart_relay_password_file": "relay.pw"}
    conf.update(extra)
    return conf


def _no_secret(m):
    assert SECRET not in m.maillog()
    assert SECRET not in m.read_stderr()


def _deferred_478(m, nh):
    """The mail is deferred with 4.7.8, kept in the queue, never bounced."""
    assert wait_until(lambda: "status=deferred" in m.maillog(), 20, what="deferral")
    log = m.maillog()
    assert re.search(r"to=<user@dest\.example>, relay=\S+, .*dsn=4\.7\.8, status=deferred", log), log
    assert "status=bounced" not in log and "non-delivery notification" not in log
    assert nh.messages == [] and "MAIL" not in nh.verbs()
    assert len(m.queue_files()) == 1
    return log


def test_plain_over_starttls_delivers(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path)
    with nh:
        keys = _keys(tmp_path, {"relay.pw": SECRET + "\nsecond line ignored\n"})
        m = mtad_factory(conf=_auth_conf(nh, keys), env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        msg = nh.wait_for(1, timeout=20)[0]
        assert msg.tls
        assert [(a[1], a[2], a[3]) for a in nh.auths] == [("PLAIN", "relayuser", True)]
        verbs = nh.verbs()
        assert verbs.index("STARTTLS") < verbs.index("AUTH") < verbs.index("MAIL")
        assert wait_until(lambda: "status=sent" in m.maillog(), 10)
        _no_secret(m)


def test_login_when_plain_is_not_offered(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path, mechs=("LOGIN",))
    with nh:
        keys = _keys(tmp_path, {"relay.pw": SECRET + "\n"})
        m = mtad_factory(conf=_auth_conf(nh, keys), env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        nh.wait_for(1, timeout=20)
        assert [(a[1], a[2], a[3]) for a in nh.auths] == [("LOGIN", "relayuser", True)]
        _no_secret(m)


def test_password_in_the_config(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path)
    with nh:
        conf = _auth_conf(nh, None, smart_relay_password=SECRET)
        del conf["key_dir"], conf["smart_relay_password_file"]
        m = mtad_factory(conf=conf, env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        nh.wait_for(1, timeout=20)
        assert nh.auths[0][3]
        p = m.run_check("--print")
        assert p.returncode == 0, p.stderr
        assert "smart_relay_password = ********" in p.stdout
        assert SECRET not in p.stdout + p.stderr
        _no_secret(m)


def test_wrong_password_defers_with_the_relays_reply(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path)
    with nh:
        keys = _keys(tmp_path, {"relay.pw": "wrong-password\n"})
        m = mtad_factory(conf=_auth_conf(nh, keys), env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        log = _deferred_478(m, nh)
        assert "SASL authentication failed; server 127.0.0.1[127.0.0.1]:%d said: 535 5.7.8 " \
            "Error: authentication failed" % nh.port in log, log
        # the relay's reply in mtactl show (and the UI's message detail, same record)
        qid = m.queue_files()[0].split(".")[0].split("/")[-1]
        p = subprocess.run([MTACTL, "-c", m.conf_path, "show", qid], env=m.env,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert "535 5.7.8" in p.stdout, p.stdout
        assert "wrong-password" not in log + m.read_stderr()


def test_454_defers(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path)
    with nh:
        nh.reply_at("AUTH", "454 4.7.0 Temporary authentication failure")
        keys = _keys(tmp_path, {"relay.pw": SECRET})
        m = mtad_factory(conf=_auth_conf(nh, keys), env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        log = _deferred_478(m, nh)
        assert "said: 454 4.7.0 Temporary authentication failure" in log, log


def test_dropped_connection_during_auth_defers(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path)
    with nh:
        nh.drop_at("AUTH")
        keys = _keys(tmp_path, {"relay.pw": SECRET})
        m = mtad_factory(conf=_auth_conf(nh, keys), env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        log = _deferred_478(m, nh)
        assert "while performing the AUTH handshake" in log, log


def test_auth_offered_without_tls_is_never_used(mtad_factory, tmp_path):
    with NextHop("127.0.0.1") as nh:         # no STARTTLS at all
        nh.auth_mechs = ["PLAIN", "LOGIN"]
        nh.auth_in_clear = True
        nh.auth_users = {"relayuser": SECRET}
        keys = _keys(tmp_path, {"relay.pw": SECRET})
        m = mtad_factory(conf=_auth_conf(nh, keys))     # smart_relay_tls = may
        _send(m)
        assert wait_until(lambda: "status=deferred" in m.maillog(), 20, what="deferral")
        log = m.maillog()
        assert "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]:%d" \
            % nh.port in log, log
        assert "AUTH" not in nh.verbs() and nh.auths == [] and nh.messages == []
        assert "status=bounced" not in log


def test_xoauth2_token_file_is_read_at_every_connection(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path, mechs=("PLAIN", "LOGIN", "XOAUTH2"))
    with nh:
        nh.auth_users = {"relayuser@example.com": "ya29.fresh-token"}
        keys = _keys(tmp_path, {"token": "ya29.expired-token\n"})
        conf = _auth_conf(nh, keys, smart_relay_username="relayuser@example.com",
                          smart_relay_password_file="token", smart_relay_auth="xoauth2",
                          retry_min_backoff="1s", retry_max_backoff="2s")
        m = mtad_factory(conf=conf, env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        log = _deferred_478(m, nh)
        assert nh.auths and all(a[1] == "XOAUTH2" and not a[3] for a in nh.auths)
        # the server's JSON error, decoded, next to its 535
        assert 'said: 535 5.7.8 Error: authentication failed: bad credentials ' \
            '({"status": "401"' in log, log
        # an outside helper refreshes the token; the next connection (the retry
        # a second or two later) reads it
        with open(os.path.join(keys, "token"), "w") as f:
            f.write("ya29.fresh-token\n")
        nh.wait_for(1, timeout=30)
        assert nh.auths[-1][1:] == ("XOAUTH2", "relayuser@example.com", True)
        assert "ya29." not in m.maillog() + m.read_stderr()


def test_smtps_relay_implicit_tls(mtad_factory, tmp_path):
    ca, nh = _auth_relay(tmp_path, implicit_tls=True)
    with nh:
        keys = _keys(tmp_path, {"relay.pw": SECRET})
        conf = _auth_conf(nh, keys, smart_relay="smtps://127.0.0.1:%d" % nh.port)
        m = mtad_factory(conf=conf, env={"SSL_CERT_FILE": ca.cert})
        _send(m)
        msg = nh.wait_for(1, timeout=20)[0]
        assert msg.tls and "STARTTLS" not in nh.verbs()
        assert nh.auths[0][1:] == ("PLAIN", "relayuser", True)
        assert wait_until(lambda: "Trusted TLS connection established to 127.0.0.1[127.0.0.1]:%d"
                          % nh.port in m.maillog(), 10)


def test_smtps_relay_that_speaks_plain_defers(mtad_factory, tmp_path):
    with NextHop("127.0.0.1") as nh:
        m = mtad_factory(conf={"smart_relay": "smtps://127.0.0.1:%d" % nh.port})
        _send(m)
        assert wait_until(lambda: "status=deferred" in m.maillog(), 20, what="deferral")
        log = m.maillog()
        assert "dsn=4.7.5" in log and "again without TLS" not in log, log
        assert nh.messages == []


def _verify_case(mtad_factory, tmp_path, cert_name, sans):
    ca = CertAuthority(tmp_path / "ca")
    nh = NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "nh", cert_name, sans))
    dns = FakeDNS({"relay.test": {"A": ["127.0.0.1"]}})
    nh.start()
    dns.start()
    with open(ca.cert) as f:
        keys = _keys(tmp_path, {"relay-ca.pem": f.read()})
    # the system store does not know the test CA: only smart_relay_ca_file does
    m = mtad_factory(conf={"smart_relay": "[relay.test]:%d" % nh.port,
                           "smart_relay_tls": "verify", "key_dir": keys,
                           "smart_relay_ca_file": "relay-ca.pem",
                           "dns_servers": "127.0.0.1:%d" % dns.port},
                     env={"SSL_CERT_FILE": str(tmp_path / "none.pem")})
    return nh, dns, m


def test_verify_with_the_right_name(mtad_factory, tmp_path):
    nh, dns, m = _verify_case(mtad_factory, tmp_path, "relay.test", ["DNS:relay.test"])
    try:
        _send(m)
        assert nh.wait_for(1, timeout=20)[0].tls
        assert wait_until(lambda: "Verified TLS connection established to relay.test[127.0.0.1]:%d"
                          % nh.port in m.maillog(), 10, what="Verified line")
    finally:
        nh.stop()
        dns.stop()


def test_verify_with_the_wrong_name_defers(mtad_factory, tmp_path):
    nh, dns, m = _verify_case(mtad_factory, tmp_path, "other.test", ["DNS:other.test"])
    try:
        _send(m)
        assert wait_until(lambda: "status=deferred" in m.maillog(), 20, what="deferral")
        log = m.maillog()
        assert "dsn=4.7.5" in log, log
        assert "Server certificate not verified: relay.test[127.0.0.1]:%d: hostname mismatch" \
            % nh.port in log, log
        assert "again without TLS" not in log and nh.messages == [] and "MAIL" not in nh.verbs()
        assert "Verified TLS" not in log
    finally:
        nh.stop()
        dns.stop()


def test_sender_relay_map_two_senders_two_relays(mtad_factory, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    a = NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "a"))
    b = NextHop("127.0.0.1", tls_context=_server_ctx(ca, tmp_path / "b"))
    with a, b:
        for nh, user in ((a, "user-a"), (b, "user-b")):
            nh.auth_mechs = ["PLAIN"]
            nh.auth_users = {user: SECRET + user}
        keys = _keys(tmp_path, {
            "senders.map": "# per-sender relays\n"
                           "@a.example   [127.0.0.1]:%d  user-a  a.pw\n"
                           "bob@b.example [127.0.0.1]:%d user-b b.pw\n" % (a.port, b.port),
            "a.pw": SECRET + "user-a\n", "b.pw": SECRET + "user-b\n"})
        m = mtad_factory(conf={"key_dir": keys, "sender_relay_map": "senders.map"},
                         env={"SSL_CERT_FILE": ca.cert})
        p = m.run_check("--print")
        assert "sender_relay_map = senders.map" in p.stdout, p.stdout
        assert "# sender_relay_map rule 1 = @a.example [127.0.0.1]:%d user=user-a " \
            "password_file=********\n" % a.port in p.stdout, p.stdout
        assert "# sender_relay_map rule 2 = bob@b.example [127.0.0.1]:%d user=user-b " \
            "password_file=********\n" % b.port in p.stdout, p.stdout
        assert "a.pw" not in p.stdout and SECRET not in p.stdout
        _send(m, sender="alice@a.example", rcpt="x@dest.example")
        _send(m, sender="bob@b.example", rcpt="y@dest.example")
        ma = a.wait_for(1, timeout=20)
        mb = b.wait_for(1, timeout=20)
        assert [x.sender for x in ma] == ["alice@a.example"]
        assert [x.sender for x in mb] == ["bob@b.example"]
        assert a.auths[0][2:] == ("user-a", True) and b.auths[0][2:] == ("user-b", True)
        # SIGHUP re-reads the map: now a.example goes through b (with b's credentials)
        with open(os.path.join(keys, "senders.map"), "w") as f:
            f.write("@a.example [127.0.0.1]:%d user-b b.pw\n" % b.port)
        m.proc.send_signal(signal.SIGHUP)
        try:
            wait_until(lambda: "configuration reloaded" in m.read_stderr(), 20, what="reload")
        except AssertionError:
            raise AssertionError("no reload: " + m.read_stderr()[-3000:])
        _send(m, sender="carol@a.example", rcpt="z@dest.example")
        mb = b.wait_for(2, timeout=20)
        assert mb[1].sender == "carol@a.example" and len(a.messages) == 1
        assert "user-a\n" not in m.maillog()
        _no_secret(m)


def test_bad_sender_relay_map_is_a_startup_error(mtad_factory, tmp_path):
    keys = _keys(tmp_path, {"senders.map": "@a.example [127.0.0.1]:25 user-only\n"})
    m = mtad_factory(conf={"key_dir": keys, "sender_relay_map": "senders.map"}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0
    assert "Error: failed to pre-configure MTA: sender_relay_map senders.map line 1: " \
        "expected PATTERN RELAY [USERNAME PASSWORD_FILE]" in err, err


def test_missing_password_file_is_a_startup_error(mtad_factory, tmp_path):
    keys = _keys(tmp_path, {})
    m = mtad_factory(conf={"key_dir": keys, "smart_relay": "[127.0.0.1]:2525",
                           "smart_relay_username": "u",
                           "smart_relay_password_file": "missing.pw"}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0 and "Error: failed to pre-configure MTA: smart_relay_password_file " \
        "missing.pw" in err, err
