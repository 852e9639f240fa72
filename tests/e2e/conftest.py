"""Black-box test harness: start the real mtad on free loopback ports.

Every test gets a fresh data_dir (pytest's tmp_path) and free ports. The
binary is $MTAD_BIN (default build/mtad); `make test-e2e` runs the suite
against the release build and the ASan+UBSan build.
"""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MTAD_BIN = os.path.abspath(os.environ.get("MTAD_BIN", os.path.join(ROOT, "build", "mtad")))
BIN_DIR = os.path.dirname(MTAD_BIN)


# Ports handed to mtad are chosen below the kernel's ephemeral range and from a
# block of their own for each xdist worker, walked in order: a port is bound by
# mtad only after free_port() has returned, so a port taken from the shared
# ephemeral pool could be handed to a parallel test in between.
# MTAD_TEST_PORT_BASE and MTAD_TEST_PORT_BLOCK move the blocks, so that two test
# runs on one machine (two work trees) never hand out the same ports.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_BLOCK = int(os.environ.get("MTAD_TEST_PORT_BLOCK", "2000"))
_BASE = int(os.environ.get("MTAD_TEST_PORT_BASE", "20000")) + \
    _BLOCK * ((int(_WORKER[2:]) if _WORKER[2:].isdigit() else 0) % 5)
_next = [_BASE]


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(_BLOCK):
        port = _next[0]
        _next[0] = _BASE + (_next[0] + 1 - _BASE) % _BLOCK
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in %d..%d" % (_BASE, _BASE + _BLOCK - 1))


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def metric(m, name):
    """The integer value of counter/gauge name on mtad m's /metrics page."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % m.ui_port, timeout=10) as r:
        text = r.read().decode()
    found = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    assert found, "%s not in /metrics" % name
    return int(found.group(1))


def queue_file_names(qdir):
    """Message files under qdir (a queue/ directory), sorted; empty spare files are not messages."""
    out = []
    for dirpath, _dirs, files in os.walk(qdir):
        for f in files:
            try:
                if os.path.getsize(os.path.join(dirpath, f)) > 0:
                    out.append(f)
            except FileNotFoundError:
                pass    # removed meanwhile (files of delivered mail are unlinked in the background)
    return sorted(out)


def port_open(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_connection((host, port), timeout=0.5) if fam == socket.AF_INET \
                else socket.create_connection((host, port, 0, 0), timeout=0.5):
            return True
    except OSError:
        return False


class Mtad:
    """One mtad process with its own config, data_dir and ports."""

    def __init__(self, tmp, conf=None, env=None, write_conf=True):
        self.tmp = str(tmp)
        # mtad drops to mail_owner (nobody) after binding; like a real
        # installation, let it traverse to its files so that SIGHUP can
        # re-read the configuration (pytest makes its temp dirs 0700).
        d = self.tmp
        while d not in ("/", "/tmp") and os.path.isdir(d):
            os.chmod(d, os.stat(d).st_mode | 0o711)
            d = os.path.dirname(d)
        self.data_dir = os.path.join(self.tmp, "data")
        self.log_dir = os.path.join(self.tmp, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.smtp_port = free_port()
        self.ui_port = free_port()
        self.conf_path = os.path.join(self.tmp, "mtad.conf")
        self.conf = {
            "data_dir": self.data_dir,
            "smtp_listen": "127.0.0.1:%d" % self.smtp_port,
            "ui_address": "127.0.0.1",
            "ui_port": str(self.ui_port),
            "smtpd_trusted_networks": "127.0.0.0/8",
            "logs_enabled": "yes",
            "log_dir": self.log_dir,
            "maillog_filename": "maillog",
            "hostname": "mx.test.example",
            "dns_servers": "127.0.0.1:1",  # nothing answers: no lookups leave the box
            # started as root, mtad refuses a mail_owner that does not exist;
            # test machines have no "mtad" user
            "mail_owner": "nobody",
        }
        if conf:
            for k, v in conf.items():
                if v is None:
                    self.conf.pop(k, None)
                else:
                    self.conf[k] = v
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            self.env.update(env)
        self.proc = None
        self.stderr_path = os.path.join(self.tmp, "mtad.stderr")
        if write_conf:
            self.write_conf()

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            for k, v in self.conf.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf_path, 0o644)

    def run_check(self, *args):
        """mtad -c CONF -t ...: returns CompletedProcess."""
        return subprocess.run([MTAD_BIN, "-c", self.conf_path, "-t", *args],
                              env=self.env, capture_output=True, text=True, timeout=30)

    def start(self, wait=True, preexec_fn=None):
        """Run mtad; preexec_fn runs in the child before exec (e.g. to lower a limit)."""
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([MTAD_BIN, "-c", self.conf_path],
                                     stdout=self.stderr, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     preexec_fn=preexec_fn)
        if wait:
            seen = {"smtp": False}

            def ready():
                # One successful probe of the SMTP port only: tests of the session
                # limits count on exactly one probe session before theirs.
                if self.proc.poll() is not None:
                    raise AssertionError("mtad exited with %s: %s" % (self.proc.returncode, self.read_stderr()))
                if not seen["smtp"]:
                    seen["smtp"] = port_open("127.0.0.1", self.smtp_port)
                return seen["smtp"] and \
                    port_open(self.conf.get("ui_address", "127.0.0.1"), int(self.conf["ui_port"]))
            wait_until(ready, 20, what="mtad to listen on %d and %s" % (self.smtp_port, self.conf["ui_port"]))
        return self

    def start_expect_fail(self, timeout=20):
        """Run mtad in the foreground; it must exit non-zero. Returns (rc, stderr)."""
        p = subprocess.run([MTAD_BIN, "-c", self.conf_path], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stderr

    def read_stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def maillog(self):
        try:
            with open(os.path.join(self.log_dir, self.conf.get("maillog_filename", "maillog")),
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("mtad did not stop within %ss" % timeout)
        return rc

    def kill9(self):
        self.proc.kill()
        return self.proc.wait()

    def queue_files(self):
        """Message files in the queue, by queue id (the queue's empty spare files are not messages)."""
        return queue_file_names(os.path.join(self.data_dir, "queue"))


@pytest.fixture
def mtad_factory(tmp_path):
    started = []

    def make(conf=None, env=None, start=True, sub=None):
        d = tmp_path / (sub or ("m%d" % len(started)))
        d.mkdir(exist_ok=True)
        m = Mtad(d, conf, env)
        started.append(m)
        if start:
            m.start()
        return m

    yield make
    for m in started:
        if m.proc is not None and m.proc.poll() is None:
            rc = m.stop()
            assert rc == 0, "mtad exit status %s on SIGTERM: %s" % (rc, m.read_stderr()[-2000:])
        err = m.read_stderr()
        assert "ERROR: AddressSanitizer" not in err, err[-4000:]
        assert "runtime error:" not in err, err[-4000:]


@pytest.fixture
def mtad(mtad_factory):
    return mtad_factory()
