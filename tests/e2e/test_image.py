"""The container image (Containerfile, SPEC §11.4), run with podman.

The image must exist (`make image`; MTAD_IMAGE names another). Each test runs
it with --memory=96m, the three volumes (/data, /keys read-only, /logs) as
fresh host directories and MTA_* variables alone, on the host's network
(--network host) so that it reaches a next hop on loopback: mail in, mail
out, the mail log on stdout, a restart with a queue that loses nothing.
Skipped, with the reason, where podman cannot run or the image is missing;
`make test` does not need podman.
"""
import os
import shutil
import smtplib
import subprocess
import time
import uuid

import pytest

from conftest import free_port, port_open, queue_file_names, wait_until
from nexthop import NextHop

IMAGE = os.environ.get("MTAD_IMAGE", "localhost/mtad:latest")
PODMAN = ["podman", "--runtime", "runc"] if shutil.which("runc") else ["podman"]
UID = 2525                  # the image's user mtad
DEADLINE = 30


def podman(*args, timeout=120, check=True):
    p = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("podman %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
    return p


def podman_ready():
    if shutil.which("podman") is None:
        return "podman is not installed"
    try:
        p = subprocess.run(PODMAN + ["image", "exists", IMAGE], capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "podman cannot run: %s" % e
    if p.returncode == 1:
        return "image %s is missing: `make image` builds it" % IMAGE
    if p.returncode != 0:
        return "podman cannot run: %s" % (p.stderr.strip() or p.returncode)
    return None


pytestmark = pytest.mark.skipif(podman_ready() is not None, reason=str(podman_ready()))


class Box:
    """One container of the image with host directories as its volumes."""

    def __init__(self, tmp, env):
        self.tmp = tmp
        self.vols = {}
        for v in ("data", "keys", "logs"):
            d = os.path.join(str(tmp), v)
            os.makedirs(d, exist_ok=True)
            os.chown(d, UID, UID)
            os.chmod(d, 0o755)
            self.vols[v] = d
        self.smtp_port = free_port()
        self.ui_port = free_port()
        self.env = {
            "MTA_SMTP_LISTEN": "127.0.0.1:%d" % self.smtp_port,
            "MTA_SMTPS_LISTEN": "",
            "MTA_UI_ADDRESS": "127.0.0.1",
            "MTA_UI_PORT": str(self.ui_port),
            "MTA_HOSTNAME": "box.test.example",
            "MTA_DNS_SERVERS": "127.0.0.1:1",
            "MTA_LOGS_ENABLED": "yes",
            "MTA_MAILLOG_FILENAME": "maillog",
        }
        self.env.update(env)
        self.names = []

    def run(self, wait=True):
        name = "mtad-test-%s" % uuid.uuid4().hex[:12]
        args = ["run", "-d", "--name", name, "--network", "host", "--memory", "96m",
                "--memory-swap", "96m",
                "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=1024:1024",
                "-v", "%s:/data" % self.vols["data"],
                "-v", "%s:/keys:ro" % self.vols["keys"],
                "-v", "%s:/logs" % self.vols["logs"]]
        for k, v in self.env.items():
            args += ["-e", "%s=%s" % (k, v)]
        args.append(IMAGE)
        self.t_start = time.monotonic()
        podman(*args)
        self.names.append(name)
        self.name = name
        if wait:
            def up():
                st = podman("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
                if st != "true":
                    raise AssertionError("container exited: %s" % self.logs())
                return port_open("127.0.0.1", self.smtp_port)
            wait_until(up, DEADLINE, interval=0.05, what="the container to listen")
        return self

    def logs(self, stream="both"):
        p = podman("logs", self.name, check=False)
        return {"out": p.stdout, "err": p.stderr, "both": p.stdout + p.stderr}[stream]

    def stop(self, timeout=30):
        podman("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        return int(podman("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout.strip())

    def queue_files(self):
        return queue_file_names(os.path.join(self.vols["data"], "queue"))

    def cleanup(self):
        for n in self.names:
            podman("rm", "-f", "-t", "0", n, check=False)


@pytest.fixture
def box(tmp_path):
    made = []

    def make(env):
        b = Box(tmp_path / ("b%d" % len(made)), env)
        made.append(b)
        return b
    yield make
    for b in made:
        b.cleanup()


def send(port, tag, rcpt="bob@dst.test"):
    msg = ("From: <alice@src.test>\r\nTo: <%s>\r\nSubject: %s\r\nX-Test-Id: %s\r\n\r\nHi.\r\n"
           % (rcpt, tag, tag)).encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("alice@src.test", [rcpt], msg)


def tags(msgs):
    return sorted(l[11:].decode() for x in msgs for l in x.data.split(b"\r\n")
                  if l.startswith(b"X-Test-Id: "))


def test_image_mail_in_and_out_with_the_log_on_stdout(box):
    with NextHop("127.0.0.1") as sink:
        b = box({"MTA_SMART_RELAY": "[127.0.0.1]:%d" % sink.port}).run()
        send(b.smtp_port, "img1")
        sink.wait_for(1, DEADLINE)
        assert tags(sink.messages) == ["img1"]
        wait_until(lambda: "status=sent" in b.logs("out"), DEADLINE,
                   what="the delivery line on stdout")
        out = b.logs("out")
        assert " box.test.example mtad/smtpd[" in out and "client=" in out, out
        assert "to=<bob@dst.test>" in out, out
        # the same lines on the log share
        with open(os.path.join(b.vols["logs"], "maillog")) as f:
            share = f.read()
        assert "status=sent" in share
        assert share.splitlines() == out.splitlines()[:len(share.splitlines())]
        # non-root, and the health check answers
        uid = podman("exec", b.name, "id", "-u").stdout.strip()
        assert uid == str(UID), uid
        assert podman("exec", b.name, "mtactl", "health").stdout.strip() == "ok"
        hc = podman("healthcheck", "run", b.name, check=False)
        assert hc.returncode == 0, hc.stdout + hc.stderr
        # the queue lives on the volume, owned by the image's user
        assert os.stat(os.path.join(b.vols["data"], "queue")).st_uid == UID
        assert b.stop() == 0


def test_image_restart_with_a_queue_loses_nothing(box):
    with NextHop("127.0.0.1") as sink:
        sink.tempfail("RCPT", reply="451 4.3.0 Not now")
        b = box({"MTA_SMART_RELAY": "[127.0.0.1]:%d" % sink.port,
                 "MTA_RETRY_MIN_BACKOFF": "1s", "MTA_RETRY_MAX_BACKOFF": "2s"}).run()
        for i in range(5):
            send(b.smtp_port, "r%d" % i, rcpt="u%d@dst.test" % i)
        wait_until(lambda: b.logs("out").count("status=deferred") >= 5, DEADLINE,
                   what="five deferrals")
        assert b.stop() == 0
        assert len(b.queue_files()) == 5, "the queue is on the data volume"
        sink.reset()
        b.run()         # a new container on the same volumes
        sink.wait_for(5, DEADLINE)
        wait_until(lambda: b.queue_files() == [], DEADLINE, what="the queue to empty")
        assert tags(sink.messages) == ["r%d" % i for i in range(5)], "each exactly once"
        assert b.stop() == 0


def test_image_sigterm_drains_to_drain_relay(box):
    with NextHop("127.0.0.1") as down, NextHop("127.0.0.1") as peer:
        down.tempfail("RCPT", reply="451 4.3.0 Not now")
        b = box({"MTA_SMART_RELAY": "[127.0.0.1]:%d" % down.port,
                 "MTA_DRAIN_RELAY": "[127.0.0.1]:%d" % peer.port,
                 "MTA_DRAIN_TIMEOUT": "10s"}).run()
        for i in range(3):
            send(b.smtp_port, "h%d" % i)
        wait_until(lambda: b.logs("out").count("status=deferred") >= 3, DEADLINE,
                   what="three deferrals")
        assert b.stop(timeout=40) == 0
        assert tags(peer.messages) == ["h0", "h1", "h2"]
        assert b.queue_files() == []
