"""SPEC §3: every start-up error, black-box, with its fixed text and a non-zero exit.

Each configuration error is checked twice: `mtad -c FILE` (the daemon must
refuse to start) and `mtad -c FILE -t` (the check must fail the same way).
The two listener errors need the daemon to get as far as binding, so they
are checked with the daemon only. Texts are matched line-exactly where
SPEC fixes the whole text and by prefix where details follow it.
"""
import os
import socket
import subprocess

import pytest

from conftest import wait_until

KEYVOL = "Error: failed to load key volume."
LOGSHARE = "Error: failed to mount log share."
LOGTERM = "Error: logs are enabled, but log terminal is not connected."
PRECONF = "Error: failed to pre-configure MTA: "
SERVER = "Error: failed to start MTA server: "
UIBACK = "Error: failed to initialize UI backend: "
UIPORT = "Error: ui_port value must be between 1 and 65535."
SSLKEYS = "Error: SSL keys could not be found on key volume!"
SSLUNDEF = "Error: ssl_disabled=no, but key files are not defined!"


def sanitizer_clean(stderr):
    assert "AddressSanitizer" not in stderr and "LeakSanitizer" not in stderr, stderr[-4000:]
    assert "runtime error:" not in stderr, stderr[-4000:]


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("Error:")]


def assert_exact(stderr, text):
    lines = error_lines(stderr)
    assert lines == [text], "got %r, want exactly %r" % (stderr, text)


def assert_prefix(stderr, text):
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith(text), \
        "got %r, want one line starting with %r" % (stderr, text)


def both_ways(m):
    """Run the daemon and the -t check; both must fail. Yields their stderr."""
    rc, err = m.start_expect_fail()
    assert rc != 0, "daemon exit status %s, want non-zero: %s" % (rc, err)
    p = m.run_check()
    assert p.returncode != 0, "mtad -t exit status %s, want non-zero: %s" % (p.returncode, p.stderr)
    assert p.stdout == "", "mtad -t printed %r on stdout on error" % p.stdout
    sanitizer_clean(err)
    sanitizer_clean(p.stderr)
    return [err, p.stderr]


def make_tls(d):
    """A key store with a matching key/cert, another key, a locked key, junk."""
    os.makedirs(d, exist_ok=True)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
         "-days", "2", "-subj", "/CN=mx.test.example")
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", os.path.join(d, "other.pem"))
    ossl("pkey", "-in", os.path.join(d, "key.pem"), "-aes128", "-passout", "pass:secret",
         "-out", os.path.join(d, "locked.pem"))
    with open(os.path.join(d, "junk.pem"), "w") as f:
        f.write("this is not PEM\n")
    return d


# ---- key volume -----------------------------------------------------------

@pytest.mark.parametrize("prop", ["key_dir", "fs_dir"])
def test_key_store_missing(mtad_factory, tmp_path, prop):
    m = mtad_factory(conf={prop: str(tmp_path / "no-such-volume")}, start=False)
    for err in both_ways(m):
        assert_prefix(err, KEYVOL)
        assert "no-such-volume" in err


def test_key_dir_not_a_directory(mtad_factory, tmp_path):
    f = tmp_path / "plain-file"
    f.write_text("x")
    m = mtad_factory(conf={"key_dir": str(f)}, start=False)
    for err in both_ways(m):
        assert_prefix(err, KEYVOL)


# ---- log share and log terminal -------------------------------------------

def test_log_dir_missing(mtad_factory, tmp_path):
    m = mtad_factory(conf={"log_dir": str(tmp_path / "no-share")}, start=False)
    for err in both_ways(m):
        assert_prefix(err, LOGSHARE)


def test_log_dir_not_a_directory(mtad_factory, tmp_path):
    f = tmp_path / "share-file"
    f.write_text("x")
    m = mtad_factory(conf={"log_dir": str(f)}, start=False)
    for err in both_ways(m):
        assert_prefix(err, LOGSHARE)


def test_log_dir_missing_but_logs_disabled_is_fine(mtad_factory, tmp_path):
    m = mtad_factory(conf={"log_dir": str(tmp_path / "no-share"), "logs_enabled": "no"},
                     start=False)
    p = m.run_check()
    assert p.returncode == 0, p.stderr


def test_logs_enabled_without_log_dir(mtad_factory):
    m = mtad_factory(conf={"log_dir": None}, start=False)
    for err in both_ways(m):
        assert_exact(err, LOGTERM)


def test_logs_enabled_with_empty_log_dir_from_env(mtad_factory):
    m = mtad_factory(env={"MTA_LOG_DIR": ""}, start=False)
    for err in both_ways(m):
        assert_exact(err, LOGTERM)


# ---- "failed to pre-configure MTA" ---------------------------------------

def write_raw(m, text):
    with open(m.conf_path, "w") as f:
        f.write(text)


def test_unknown_property_names_file_and_line(mtad_factory):
    m = mtad_factory(start=False)
    lines = open(m.conf_path).read().splitlines()
    write_raw(m, "\n".join(lines[:3] + ["no_such_property = 1"] + lines[3:]) + "\n")
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s line 4: unknown property 'no_such_property'" % m.conf_path)


def test_repeated_property(mtad_factory):
    m = mtad_factory(start=False)
    with open(m.conf_path, "a") as f:
        f.write("# again\nhostname = other.example\n")
    n = len(open(m.conf_path).read().splitlines())
    first = [i + 1 for i, l in enumerate(open(m.conf_path).read().splitlines())
             if l.startswith("hostname")][0]
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s line %d: hostname repeated (first set on line %d)"
                     % (m.conf_path, n, first))


def test_malformed_line(mtad_factory):
    m = mtad_factory(start=False)
    with open(m.conf_path, "a") as f:
        f.write("this line has no equals sign\n")
    n = len(open(m.conf_path).read().splitlines())
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s line %d: malformed line (expected name = value)"
                     % (m.conf_path, n))


@pytest.mark.parametrize("prop,value,why", [
    ("smtpd_timeout", "5 minutes", "smtpd_timeout = '5 minutes': expected a duration"),
    ("logs_enabled", "true", "logs_enabled = 'true': expected yes or no"),
    ("smart_relay", "2001:db8::1", "smart_relay = '2001:db8::1': expected host"),
    ("smtpd_trusted_networks", "10.1.2.3/8", "smtpd_trusted_networks: host bits set"),
    ("smtp_listen", "127.0.0.1", "smtp_listen = '127.0.0.1': port missing"),
    ("message_size_limit", "10MB", "message_size_limit = '10MB': expected a number"),
    ("timezone", "Mars/Olympus_Mons", "timezone = 'Mars/Olympus_Mons': unknown time zone"),
    ("timezone", "../../etc/passwd", "timezone = '../../etc/passwd': not an IANA time zone name"),
    ("metrics_push", "tcp://127.0.0.1:8125", "metrics_push = 'tcp://127.0.0.1:8125'"),
])
def test_bad_value(mtad_factory, prop, value, why):
    m = mtad_factory(conf={prop: value}, start=False)
    for err in both_ways(m):
        assert_prefix(err, PRECONF + m.conf_path + " line ")
        assert why in err, "got %r, want %r in it" % (err, why)


def test_bad_value_from_environment(mtad_factory):
    m = mtad_factory(env={"MTA_QUEUE_LIFETIME": "forever"}, start=False)
    for err in both_ways(m):
        assert_prefix(err, PRECONF + "environment variable MTA_QUEUE_LIFETIME: "
                      "queue_lifetime = 'forever': expected a duration")


def test_missing_data_dir(mtad_factory):
    m = mtad_factory(conf={"data_dir": None}, start=False)
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s: data_dir is not set (it is mandatory)" % m.conf_path)


def test_both_key_dir_and_fs_dir(mtad_factory, tmp_path):
    (tmp_path / "k").mkdir()
    (tmp_path / "f").mkdir()
    m = mtad_factory(conf={"key_dir": str(tmp_path / "k"), "fs_dir": str(tmp_path / "f")},
                     start=False)
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s: key_dir and fs_dir are both set; use one key store"
                     % m.conf_path)


def test_retry_backoffs_inverted(mtad_factory):
    m = mtad_factory(conf={"retry_min_backoff": "2h", "retry_max_backoff": "1h"}, start=False)
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s: retry_min_backoff (7200s) is greater than "
                     "retry_max_backoff (3600s)" % m.conf_path)


def test_proxy_protocol_without_proxy_networks(mtad_factory):
    """SPEC §11.4: a PROXY header is believed only from smtpd_proxy_networks,
    so haproxy without that list is a configuration error, not "everyone"."""
    m = mtad_factory(conf={"smtpd_proxy_protocol": "haproxy"}, start=False)
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s: smtpd_proxy_protocol = haproxy needs "
                     "smtpd_proxy_networks (the load balancers whose PROXY header is "
                     "believed)" % m.conf_path)


@pytest.mark.parametrize("value", ["100001", "1000000"])
def test_recipient_limit_above_the_queue_format(mtad_factory, value):
    """The queue file holds at most 100,000 recipients: a larger
    smtpd_recipient_limit is refused when the configuration is read."""
    m = mtad_factory(conf={"smtpd_recipient_limit": value}, start=False)
    for err in both_ways(m):
        assert_prefix(err, PRECONF + m.conf_path + " line ")
        want = "smtpd_recipient_limit = '%s': expected a number from 1 to 100000" % value
        assert want in err, "got %r, want %r in it" % (err, want)


def test_missing_config_file(mtad_factory):
    m = mtad_factory(start=False)
    os.unlink(m.conf_path)
    for err in both_ways(m):
        assert_exact(err, PRECONF + "%s: No such file or directory" % m.conf_path)


def test_data_dir_not_creatable(mtad_factory, tmp_path):
    m = mtad_factory(conf={"data_dir": str(tmp_path / "a" / "b" / "data")}, start=False)
    for err in both_ways(m):
        assert_prefix(err, PRECONF + "data_dir " + str(tmp_path / "a" / "b" / "data"))


# ---- ui_port ------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "65536", "-1", "http", "", "99999999999999999999"])
def test_ui_port_out_of_range(mtad_factory, value):
    m = mtad_factory(conf={"ui_port": value}, start=False)
    for err in both_ways(m):
        assert_exact(err, UIPORT)


def test_ui_port_out_of_range_from_environment(mtad_factory):
    m = mtad_factory(env={"MTA_UI_PORT": "70000"}, start=False)
    for err in both_ways(m):
        assert_exact(err, UIPORT)


# ---- TLS key files --------------------------------------------------------

def test_ssl_enabled_without_key_files(mtad_factory):
    m = mtad_factory(conf={"ssl_disabled": "no"}, start=False)
    for err in both_ways(m):
        assert_exact(err, SSLUNDEF)


def test_ssl_enabled_with_only_a_certificate(mtad_factory, tmp_path):
    keys = make_tls(str(tmp_path / "keys"))
    m = mtad_factory(conf={"ssl_disabled": "no", "key_dir": keys, "ssl_cert_file": "cert.pem"},
                     start=False)
    for err in both_ways(m):
        assert_exact(err, SSLUNDEF)


@pytest.mark.parametrize("key,cert,detail", [
    ("missing.pem", "cert.pem", "(missing.pem: No such file or directory)"),
    ("key.pem", "missing.pem", "(missing.pem: No such file or directory)"),
    ("junk.pem", "cert.pem", "(junk.pem: not a PEM private key"),
    ("key.pem", "junk.pem", "(junk.pem: not a PEM certificate)"),
    ("locked.pem", "cert.pem", "(locked.pem: the private key is protected by a passphrase)"),
    ("other.pem", "cert.pem", "(cert.pem: the certificate does not match the private key)"),
    ("../outside.pem", "cert.pem", "(../outside.pem: '..' leaves the key store)"),
])
def test_ssl_keys_not_usable(mtad_factory, tmp_path, key, cert, detail):
    keys = make_tls(str(tmp_path / "keys"))
    (tmp_path / "outside.pem").write_text("x")
    m = mtad_factory(conf={"ssl_disabled": "no", "key_dir": keys, "ssl_key_file": key,
                           "ssl_cert_file": cert}, start=False)
    for err in both_ways(m):
        assert_prefix(err, SSLKEYS + " " + detail)


def test_ssl_keys_without_key_store(mtad_factory):
    m = mtad_factory(conf={"ssl_disabled": "no", "ssl_key_file": "key.pem",
                           "ssl_cert_file": "cert.pem"}, start=False)
    for err in both_ways(m):
        assert_prefix(err, SSLKEYS + " (key.pem: no key store is configured")


@pytest.mark.parametrize("store", ["key_dir", "fs_dir"])
def test_ssl_keys_valid_pass_the_check(mtad_factory, tmp_path, store):
    keys = make_tls(str(tmp_path / "keys"))
    m = mtad_factory(conf={"ssl_disabled": "no", store: keys, "ssl_key_file": "key.pem",
                           "ssl_cert_file": "/cert.pem",
                           "smtps_listen": "127.0.0.1:%d" % _free_port()}, start=False)
    p = m.run_check()
    assert p.returncode == 0, p.stderr
    assert error_lines(p.stderr) == []


# ---- order when several errors apply --------------------------------------

def test_order_file_errors_before_environment_checks(mtad_factory, tmp_path):
    # unknown property (file) beats key volume (file system) and log terminal (cross check)
    m = mtad_factory(conf={"bogus": "1", "key_dir": str(tmp_path / "none"), "log_dir": None},
                     start=False)
    for err in both_ways(m):
        assert_prefix(err, PRECONF)
        assert "unknown property 'bogus'" in err


def test_order_key_volume_before_log_share(mtad_factory, tmp_path):
    m = mtad_factory(conf={"key_dir": str(tmp_path / "none"),
                           "log_dir": str(tmp_path / "no-share")}, start=False)
    for err in both_ways(m):
        assert_prefix(err, KEYVOL)


# ---- listeners: the daemon must get as far as binding ---------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_smtp_port_in_use(mtad_factory):
    blocker = socket.socket()
    try:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        m = mtad_factory(conf={"smtp_listen": "127.0.0.1:%d" % port}, start=False)
        rc, err = m.start_expect_fail()
        assert rc != 0, err
        sanitizer_clean(err)
        assert_prefix(err, SERVER)
        # the -t check does not bind: the same configuration is valid
        p = m.run_check()
        assert p.returncode == 0, p.stderr
    finally:
        blocker.close()


def test_ui_port_in_use(mtad_factory):
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        m = mtad_factory(conf={"ui_port": str(port)}, start=False)
        rc, err = m.start_expect_fail()
        assert rc != 0, err
        sanitizer_clean(err)
        assert_prefix(err, UIBACK)
    finally:
        blocker.close()


def test_valid_configuration_starts(mtad_factory):
    """The harness's configuration passes -t with nothing on stderr, and the daemon runs."""
    m = mtad_factory(start=False)
    p = m.run_check()
    assert p.returncode == 0, p.stderr
    assert error_lines(p.stderr) == []
    m.start()
    # The SMTP port opens before the signal handlers are installed; wait for
    # the "started" line so the fixture's SIGTERM meets a handler.
    wait_until(lambda: " started" in m.read_stderr(), 20, what="the started line")
    assert m.proc.poll() is None
