"""The daemon as a container runs it (SPEC §1, §11.4), without a container:
`mtad` without -c takes its whole configuration from MTA_* variables, and
maillog_stdout puts the mail log on stdout, in the file's format, whether or
not logs_enabled writes the file.

The image itself is tested by test_image.py (podman); these tests need none.
"""
import os
import re
import smtplib
import subprocess

from conftest import MTAD_BIN, BIN_DIR, Mtad, wait_until, port_open
from nexthop import NextHop

DEADLINE = 20
LINE_RE = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ mtad/\w+\[\d+\]: ")


def env_of(conf, base=None):
    """MTA_* variables for a configuration dict, on top of a clean environment."""
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith("MTA_")}
    env.pop("MTAD_CONFIG", None)
    for k, v in conf.items():
        env["MTA_" + k.upper()] = v
    return env


class EnvMtad(Mtad):
    """An mtad started without -c: everything from the environment; stdout kept apart."""

    def __init__(self, tmp, conf=None):
        super().__init__(tmp, conf, write_conf=False)
        self.stdout_path = os.path.join(self.tmp, "mtad.stdout")
        self.env = env_of(self.conf, self.env)

    def start(self, wait=True):
        self.stderr = open(self.stderr_path, "ab")
        self.stdout = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen([MTAD_BIN], stdout=self.stdout, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=self.tmp)
        if wait:
            def ready():
                if self.proc.poll() is not None:
                    raise AssertionError("mtad exited with %s: %s"
                                         % (self.proc.returncode, self.read_stderr()))
                return port_open("127.0.0.1", self.smtp_port) and \
                    port_open("127.0.0.1", int(self.conf["ui_port"]))
            wait_until(ready, DEADLINE, what="mtad (environment only) to listen")
        return self

    def read_stdout(self):
        with open(self.stdout_path, errors="replace") as f:
            return f.read()


def env_mtad(tmp_path, conf=None, start=True):
    d = tmp_path / "env"
    d.mkdir(exist_ok=True)
    m = EnvMtad(d, conf)
    if start:
        m.start()
    return m


def send(port, tag, rcpt="bob@dst.test"):
    msg = ("From: <alice@src.test>\r\nTo: <%s>\r\nSubject: %s\r\nX-Test-Id: %s\r\n\r\nHi.\r\n"
           % (rcpt, tag, tag)).encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("alice@src.test", [rcpt], msg)


def finish(m):
    rc = m.stop()
    assert rc == 0, "exit status %s: %s" % (rc, m.read_stderr()[-2000:])
    err = m.read_stderr()
    assert "AddressSanitizer" not in err and "runtime error:" not in err, err[-4000:]


def test_environment_only_configuration(tmp_path):
    """No -c and no /etc/mtad/mtad.conf: MTA_* alone configure mtad, data_dir included."""
    if os.path.exists("/etc/mtad/mtad.conf"):
        import pytest
        pytest.skip("/etc/mtad/mtad.conf exists on this machine: mtad would read it")
    with NextHop("127.0.0.1") as nh:
        m = env_mtad(tmp_path, {"smart_relay": "[127.0.0.1]:%d" % nh.port,
                                "logs_enabled": "no", "maillog_filename": ""})
        try:
            send(m.smtp_port, "env1")
            msgs = nh.wait_for(1, DEADLINE)
            assert msgs[0].rcpts == ["bob@dst.test"]
            # the queue lives in MTA_DATA_DIR
            assert os.path.isdir(os.path.join(m.data_dir, "queue")), os.listdir(m.data_dir)
            # mtactl without -c reads the same environment and finds the running mtad
            p = subprocess.run([os.path.join(BIN_DIR, "mtactl"), "stats"], env=m.env,
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stderr
        finally:
            finish(m)
    # -t --print shows where the configuration came from: the environment's values
    p = subprocess.run([MTAD_BIN, "-t", "--print"], env=m.env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    conf = dict(l.split(" = ", 1) for l in p.stdout.splitlines() if " = " in l)
    assert conf["data_dir"] == m.data_dir
    assert conf["smart_relay"] == "[127.0.0.1]:%d" % nh.port
    assert conf["maillog_stdout"] == "no"


def test_environment_only_needs_data_dir(tmp_path):
    if os.path.exists("/etc/mtad/mtad.conf"):
        import pytest
        pytest.skip("/etc/mtad/mtad.conf exists on this machine: mtad would read it")
    env = env_of({"smtp_listen": "127.0.0.1:1"})
    p = subprocess.run([MTAD_BIN], env=env, capture_output=True, text=True, timeout=30,
                       cwd=str(tmp_path))
    assert p.returncode == 1
    assert p.stderr.startswith("Error: failed to pre-configure MTA: ")
    assert "MTA_DATA_DIR" in p.stderr and "data_dir" in p.stderr, p.stderr
    # a bad value names its variable
    env = env_of({"data_dir": str(tmp_path / "d"), "maillog_stdout": "perhaps"})
    p = subprocess.run([MTAD_BIN, "-t"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "environment variable MTA_MAILLOG_STDOUT" in p.stderr, p.stderr


def test_maillog_on_stdout_without_log_share(tmp_path):
    """maillog_stdout = yes with logs_enabled = no: the Postfix-format lines on stdout only."""
    with NextHop("127.0.0.1") as nh:
        m = env_mtad(tmp_path, {"smart_relay": "[127.0.0.1]:%d" % nh.port,
                                "logs_enabled": "no", "maillog_filename": "",
                                "maillog_stdout": "yes"})
        try:
            send(m.smtp_port, "out1")
            nh.wait_for(1, DEADLINE)
            wait_until(lambda: "status=sent" in m.read_stdout(), DEADLINE,
                       what="the delivery line on stdout")
        finally:
            finish(m)
    out = m.read_stdout()
    lines = out.splitlines()
    assert lines, out
    for l in lines:
        assert LINE_RE.match(l), "not a mail log line on stdout: %r" % l
    assert any(" mtad/smtpd[" in l and "client=" in l for l in lines), out
    assert any(" mtad/qmgr[" in l and "from=<alice@src.test>" in l for l in lines), out
    assert any("to=<bob@dst.test>" in l and "status=sent" in l for l in lines), out
    assert os.listdir(m.log_dir) == [], "no file on the log share"
    # diagnostics stay on stderr, never mixed into the mail log stream
    assert "started" in m.read_stderr()


def test_maillog_stdout_and_file_carry_the_same_lines(tmp_path):
    with NextHop("127.0.0.1") as nh:
        m = env_mtad(tmp_path, {"smart_relay": "[127.0.0.1]:%d" % nh.port,
                                "maillog_stdout": "yes"})
        try:
            send(m.smtp_port, "both1")
            send(m.smtp_port, "both2")
            nh.wait_for(2, DEADLINE)
            wait_until(lambda: m.read_stdout().count("status=sent") == 2, DEADLINE,
                       what="two delivery lines on stdout")
            wait_until(lambda: m.maillog() == m.read_stdout(), DEADLINE,
                       what="the file to hold the same lines")
        finally:
            finish(m)
    assert m.maillog() == m.read_stdout()


def test_maillog_stdout_default_is_off(tmp_path):
    with NextHop("127.0.0.1") as nh:
        m = env_mtad(tmp_path, {"smart_relay": "[127.0.0.1]:%d" % nh.port})
        try:
            send(m.smtp_port, "off1")
            nh.wait_for(1, DEADLINE)
            wait_until(lambda: "status=sent" in m.maillog(), DEADLINE, what="the file's line")
        finally:
            finish(m)
    assert m.read_stdout() == ""
