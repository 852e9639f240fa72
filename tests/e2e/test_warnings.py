"""Configuration warnings (SPEC §2.1): a setting that works but opens the
relay or is ignored is logged at start, on every SIGHUP that applies a new
configuration and by `mtad -t` -- one list for all three."""
import signal

from conftest import wait_until

OPEN_RELAY = "THIS IS AN OPEN RELAY"
CC_IGNORED = "cc_mta has no effect when smart_relay is set"


def reload(m, **conf):
    """Rewrite m's configuration, SIGHUP, wait for the reload; returns stderr logged by it."""
    before = len(m.read_stderr())
    m.conf.update(conf)
    m.write_conf()
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in m.read_stderr()[before:], 10,
               what="configuration reloaded")
    return m.read_stderr()[before:]


def test_start_warns_about_open_relay_and_ignored_cc(mtad_factory):
    m = mtad_factory(conf={"smtpd_trusted_networks": "0.0.0.0/0",
                           "smart_relay": "[127.0.0.1]:1", "cc_mta": "[127.0.0.1]:2"})
    err = m.read_stderr()
    assert OPEN_RELAY in err and CC_IGNORED in err, err


def test_reload_to_open_relay_warns(mtad_factory):
    m = mtad_factory()
    assert OPEN_RELAY not in m.read_stderr()
    out = reload(m, smtpd_trusted_networks="0.0.0.0/0")
    assert OPEN_RELAY in out, out
    out = reload(m, smtpd_trusted_networks="::/0, 127.0.0.1")
    assert OPEN_RELAY in out, out
    # back to a closed relay: no warning any more
    out = reload(m, smtpd_trusted_networks="127.0.0.0/8")
    assert OPEN_RELAY not in out, out


def test_reload_to_cc_mta_with_smart_relay_warns(mtad_factory):
    m = mtad_factory(conf={"smart_relay": "[127.0.0.1]:1"})
    assert CC_IGNORED not in m.read_stderr()
    out = reload(m, cc_mta="[127.0.0.1]:2")
    assert CC_IGNORED in out, out


def test_check_mode_prints_the_warnings(mtad_factory):
    m = mtad_factory(conf={"smtpd_trusted_networks": "0.0.0.0/0"}, start=False)
    p = m.run_check()
    assert p.returncode == 0, p.stderr
    assert OPEN_RELAY in p.stderr, p.stderr


def test_cc_mta_logged_with_its_port(mtad_factory):
    m = mtad_factory(conf={"cc_mta": "[127.0.0.1]:32201"})
    wait_until(lambda: "cc_mta: a copy" in m.read_stderr(), 10, what="the cc_mta line")
    assert "cc_mta: a copy of every relayed message goes to [127.0.0.1]:32201" in \
        m.read_stderr(), m.read_stderr()
