"""`mtad -t`, `mtad -t --print` and `mtad -V` (SPEC §1, §2), black-box."""
import os
import re
import subprocess

from conftest import MTAD_BIN

# Every property of SPEC §2.1-2.3 plus the documented extensions.
PROPERTIES = [
    "hostname", "logs_enabled", "maillog_filename", "smtpd_trusted_networks", "smart_relay",
    "cc_mta", "username", "password", "ui_port", "ssl_disabled", "ssl_key_file",
    "ssl_cert_file", "timezone", "data_dir", "key_dir", "fs_dir", "log_dir", "smtp_listen",
    "smtps_listen", "ui_address", "relay_smtp_port", "dns_servers", "metrics_push",
    "message_size_limit", "smtpd_recipient_limit", "smtpd_client_connection_limit",
    "smtpd_max_sessions", "smtpd_timeout", "retry_min_backoff", "retry_max_backoff",
    "queue_lifetime", "queue_active_limit", "delay_warning_time", "destination_concurrency", "smtp_connect_timeout",
    "maillog_stdout", "drain_relay", "drain_timeout",
    "smtpd_proxy_protocol", "smtpd_proxy_networks", "mail_owner", "smart_relay_tls",
    "ui_hosts", "ui_max_connections", "submission_listen", "smtpd_users_file",
    "dkim_key_table",
    "smart_relay_ca_file", "smart_relay_username", "smart_relay_password",
    "smart_relay_password_file", "smart_relay_auth", "sender_relay_map",
    "smtp_tls_session_cache", "destination_rate_limit", "destination_policy_file",
]


def printed(m, *extra):
    p = m.run_check("--print", *extra)
    assert p.returncode == 0, p.stderr
    values = {}
    for line in p.stdout.splitlines():
        name, sep, value = line.partition(" =")
        assert sep, "line without ' =': %r" % line
        assert name not in values, "%s printed twice" % name
        values[name] = value[1:] if value.startswith(" ") else value
    return values, p.stdout


def test_check_valid_exits_zero_quietly(mtad_factory):
    m = mtad_factory(start=False)
    p = m.run_check()
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert "Error" not in p.stderr


def test_check_changes_nothing(mtad_factory):
    m = mtad_factory(start=False)
    assert not os.path.exists(m.data_dir)
    before = sorted(os.listdir(m.log_dir))
    assert m.run_check().returncode == 0
    assert not os.path.exists(m.data_dir), "mtad -t created data_dir"
    assert sorted(os.listdir(m.log_dir)) == before, "mtad -t left files in log_dir"


def test_print_lists_every_property_once(mtad_factory):
    m = mtad_factory(start=False)
    values, out = printed(m)
    assert sorted(values) == sorted(PROPERTIES), out
    # in the documented order (SPEC's tables)
    assert list(values) == PROPERTIES


def test_print_shows_file_values_and_defaults(mtad_factory):
    m = mtad_factory(conf={"smtpd_timeout": "90", "queue_lifetime": "3d"}, start=False)
    values, _ = printed(m)
    assert values["hostname"] == "mx.test.example"
    assert values["smtp_listen"] == "127.0.0.1:%d" % m.smtp_port
    assert values["ui_port"] == str(m.ui_port)
    assert values["data_dir"] == m.data_dir
    assert values["smtpd_timeout"] == "90s"
    assert values["queue_lifetime"] == "3d"
    # SPEC defaults of what the harness does not set
    want = {
        "smart_relay": "", "cc_mta": "", "username": "", "password": "", "ssl_disabled": "yes",
        "smtps_listen": "0.0.0.0:465", "relay_smtp_port": "25",
        "message_size_limit": "10240000", "smtpd_recipient_limit": "1000",
        "smtpd_client_connection_limit": "50", "smtpd_max_sessions": "10000",
        "retry_min_backoff": "5m", "retry_max_backoff": "4000s", "delay_warning_time": "0",
        "destination_concurrency": "20", "smtp_connect_timeout": "30s",
        "smtpd_proxy_protocol": "", "smtpd_proxy_networks": "",
        "smart_relay_tls": "may", "ui_hosts": "", "ui_max_connections": "256",
        "submission_listen": "", "smtpd_users_file": "", "dkim_key_table": "",
        "timezone": "", "key_dir": "", "fs_dir": "",
    }
    for k, v in want.items():
        assert values[k] == v, "%s: got %r, want %r" % (k, values[k], v)


def test_print_masks_the_password(mtad_factory):
    m = mtad_factory(conf={"username": "admin", "password": '"Sup3r#Secret"'}, start=False)
    values, out = printed(m)
    assert values["username"] == "admin"
    assert values["password"] == "********"
    assert "Sup3r" not in out


def test_print_empty_password_is_not_masked(mtad_factory):
    m = mtad_factory(conf={"username": "admin", "password": ""}, start=False)
    values, _ = printed(m)
    assert values["password"] == ""


def test_print_shows_environment_overrides(mtad_factory):
    m = mtad_factory(conf={"smart_relay": "file-relay.example"}, env={
        "MTA_SMART_RELAY": "[env-relay.example]:587",
        "MTA_HOSTNAME": "env.example",
        "MTA_PASSWORD": "from-env",
        "MTA_QUEUE_LIFETIME": "2d",
        "MTA_SOMETHING_UNRELATED": "ignored",
    }, start=False)
    values, out = printed(m)
    assert values["smart_relay"] == "[env-relay.example]:587"
    assert values["hostname"] == "env.example"
    assert values["password"] == "********"
    assert values["queue_lifetime"] == "2d"
    assert "from-env" not in out and "file-relay" not in out


def test_print_output_is_a_valid_configuration(mtad_factory, tmp_path):
    m = mtad_factory(conf={"username": "admin", "password": "pw", "maillog_filename": '"a#b"',
                           "smart_relay": "[2001:db8::1]:587"}, start=False)
    _, out = printed(m)
    again = tmp_path / "printed.conf"
    again.write_text(out)
    p = subprocess.run([MTAD_BIN, "-c", str(again), "-t", "--print"], env=m.env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == out


def test_quoted_values_and_comments(mtad_factory):
    m = mtad_factory(start=False)
    with open(m.conf_path, "a") as f:
        f.write("# a comment line\n\n   \n")
        f.write('username = "ad#min"   # the UI user\n')
        f.write('cc_mta = archive.example.org # copy\n')
    values, _ = printed(m)
    assert values["username"] == '"ad#min"'
    assert values["cc_mta"] == "archive.example.org"


def test_check_error_prints_nothing_on_stdout(mtad_factory):
    m = mtad_factory(conf={"ui_port": "0"}, start=False)
    p = m.run_check("--print")
    assert p.returncode != 0
    assert p.stdout == ""
    assert "Error: ui_port value must be between 1 and 65535." in p.stderr


def test_version():
    p = subprocess.run([MTAD_BIN, "-V"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"mtad \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout


def test_version_needs_no_configuration(tmp_path):
    p = subprocess.run([MTAD_BIN, "-V"], capture_output=True, text=True, timeout=30,
                       cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 0 and p.stdout.startswith("mtad ")


EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "etc", "mtad.conf.example")


def run_print(path, env):
    p = subprocess.run([MTAD_BIN, "-c", path, "-t", "--print"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_example_configuration_lists_every_default(tmp_path):
    """etc/mtad.conf.example is valid, names every property once, and the
    commented values are the defaults: uncommenting them all changes nothing."""
    env = dict(os.environ)
    env["MTA_DATA_DIR"] = str(tmp_path / "data")
    env["MTA_MAIL_OWNER"] = "nobody"    # -t as root checks the user; test hosts have no "mtad"
    text = open(EXAMPLE).read()
    as_is = run_print(EXAMPLE, env)

    names = []
    out = []
    for line in text.splitlines():
        mo = re.fullmatch(r"# ?([a-z_]+) =(.*)", line)
        if mo and mo.group(1) in PROPERTIES:
            names.append(mo.group(1))
            line = line.lstrip("# ")
        elif re.fullmatch(r"([a-z_]+) =(.*)", line):
            names.append(line.split()[0])
        out.append(line)
    assert sorted(names) == sorted(PROPERTIES), "the example must name every property once"
    uncommented = tmp_path / "uncommented.conf"
    uncommented.write_text("\n".join(out) + "\n")
    assert run_print(str(uncommented), env) == as_is
