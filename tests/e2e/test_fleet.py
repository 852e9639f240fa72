"""A fleet behind a real load balancer (SPEC §11.4): HAProxy in TCP mode with
send-proxy-v2 in front of three mtad instances on loopback.

- HAProxy connects to the instances from 127.0.0.9, the only address in
  smtpd_proxy_networks; clients come from 127.0.0.20 (trusted) and
  127.0.0.30 (not). smtpd_trusted_networks also holds 127.0.0.9, so an
  instance that judged by the balancer's address would relay for anyone:
  the refusal of 127.0.0.30 shows it judges the real client.
- Mail spreads over the three.
- Instance 0 cannot deliver (its smart relay defers its share); stopped
  with SIGTERM and drain_relay pointing at HAProxy, it hands its queue to
  the others: the sink gets every message exactly once, and nothing stays
  in instance 0's data_dir.

HAProxy runs as this test's own process and is stopped by its PID.
"""
import os
import shutil
import smtplib
import socket
import subprocess

import pytest

from conftest import free_port, port_open, wait_until
from nexthop import NextHop

DEADLINE = 30
LB_SRC = "127.0.0.9"        # HAProxy's address towards the instances
TRUSTED_CLIENT = "127.0.0.20"
OTHER_CLIENT = "127.0.0.30"

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="haproxy is not installed (.ci/deps.sh installs it)")


class HAProxy:
    def __init__(self, tmp, servers):
        self.port = free_port()
        self.cfg = os.path.join(str(tmp), "haproxy.cfg")
        lines = [
            "global", "    maxconn 4000",
            "defaults", "    mode tcp", "    timeout connect 2s", "    timeout client 60s",
            "    timeout server 60s", "    retries 3", "    option redispatch",
            "frontend smtp", "    bind 127.0.0.1:%d" % self.port, "    default_backend mtads",
            "backend mtads", "    balance roundrobin",
        ]
        for i, port in enumerate(servers):
            lines.append("    server m%d 127.0.0.1:%d send-proxy-v2 source %s "
                         "check inter 200 fall 1 rise 2" % (i, port, LB_SRC))
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(str(tmp), "haproxy.log"), "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        wait_until(lambda: self.proc.poll() is None and port_open("127.0.0.1", self.port),
                   DEADLINE, what="haproxy to listen")
        self.n = len(servers)

    def all_up(self):
        with open(self.log.name, errors="replace") as f:
            return "%d active and 0 backup servers online" % self.n in f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()       # our own process, by PID
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def smtp_from(src, port, sender, rcpts, tag):
    """One message through port, from source address src; returns smtplib's refused dict."""
    msg = ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\nX-Test-Id: %s\r\n\r\nHi.\r\n"
           % (sender, ", ".join("<%s>" % r for r in rcpts), tag, tag)).encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=15, source_address=(src, 0)) as s:
        return s.sendmail(sender, rcpts, msg)


def tags(msgs):
    return [l[11:].decode() for x in msgs for l in x.data.split(b"\r\n")
            if l.startswith(b"X-Test-Id: ")]


@pytest.fixture
def fleet(mtad_factory, tmp_path):
    sink = NextHop("127.0.0.1").start()
    down = NextHop("127.0.0.1").start()
    down.tempfail("RCPT", reply="451 4.3.0 Not now")
    ms = []
    for i in range(3):
        ms.append(mtad_factory({
            "smtpd_proxy_protocol": "haproxy",
            "smtpd_proxy_networks": LB_SRC,
            "smtpd_trusted_networks": "127.0.0.1 %s %s" % (LB_SRC, TRUSTED_CLIENT),
            "smart_relay": "[127.0.0.1]:%d" % (down.port if i == 0 else sink.port),
            "retry_min_backoff": "1h", "retry_max_backoff": "2h",
            "smtp_connect_timeout": "3s",
        }, start=False))
    lb = HAProxy(tmp_path, [m.smtp_port for m in ms])
    for i, m in enumerate(ms):
        if i == 0:
            m.conf["drain_relay"] = "[127.0.0.1]:%d" % lb.port
            m.conf["drain_timeout"] = "20s"
            m.write_conf()
        m.start()
    wait_until(lb.all_up, DEADLINE, what="haproxy to see the three instances up")
    yield ms, lb, sink, down
    lb.stop()
    sink.stop()
    down.stop()


def test_fleet_behind_haproxy(fleet):
    ms, lb, sink, down = fleet
    # trusted-network decisions use the real client, not HAProxy's address
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        smtp_from(OTHER_CLIENT, lb.port, "x@src.test", ["y@elsewhere.test"], "denied")
    code, text = e.value.recipients["y@elsewhere.test"]
    assert code == 554 and b"Relay access denied" in text, (code, text)
    wait_until(lambda: any("client=" not in l and OTHER_CLIENT in l and "reject" in l
                           for m in ms for l in m.maillog().splitlines()),
               DEADLINE, what="the rejection logged with the real client's address")

    # load spreads over the three instances; instance 0 defers all of its share
    n = 45
    for i in range(n):
        assert smtp_from(TRUSTED_CLIENT, lb.port, "app@src.test",
                         ["u%d@dst.test" % i], "lb%d" % i) == {}
    accepted = [sum(1 for l in m.maillog().splitlines()
                    if "client=unknown[%s]" % TRUSTED_CLIENT in l) for m in ms]
    assert sum(accepted) == n, accepted
    assert all(a >= 1 for a in accepted), "load did not spread: %s" % accepted
    # instance 0 also takes mail directly (not from a proxy network: its own address)
    for i in range(15):
        assert smtp_from("127.0.0.1", ms[0].smtp_port, "app@src.test",
                         ["d%d@dst.test" % i], "direct%d" % i) == {}
    want0 = accepted[0] + 15
    wait_until(lambda: ms[0].maillog().count("status=deferred") >= want0, DEADLINE,
               what="instance 0's deferrals")
    sink.wait_for(n - accepted[0], DEADLINE)
    assert len(ms[0].queue_files()) == want0

    # scale down: instance 0 drains through HAProxy to the other two
    ms[0].proc.send_signal(15)
    rc = ms[0].proc.wait(60)
    assert rc == 0, ms[0].read_stderr()[-3000:]
    sink.wait_for(n + 15, DEADLINE)
    wait_until(lambda: all(m.queue_files() == [] for m in ms[1:]), DEADLINE,
               what="the peers to deliver what they were handed")
    got = tags(sink.messages)
    want = ["lb%d" % i for i in range(n)] + ["direct%d" % i for i in range(15)]
    assert sorted(got) == sorted(want), "every message exactly once"
    assert len(got) == len(set(got))
    assert ms[0].queue_files() == [], "nothing left in the stopped instance's data_dir"
    # the peers took the hand-over from instance 0 (PROXY: 127.0.0.1) as trusted
    handed = sum(1 for m in ms[1:] for l in m.maillog().splitlines()
                 if "client=unknown[127.0.0.1]" in l)
    assert handed == want0, handed
    assert down.messages == []
