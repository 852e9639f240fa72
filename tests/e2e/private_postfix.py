"""private_postfix.py - start and stop a private Postfix instance on
loopback: the one starter of the tests (postfix_relay.py, peers.py) and the
benchmarks (bench/relay_bench.py, bench/dkim_bench.sh, bench/tls_bench.sh).

    from private_postfix import PrivatePostfix
    pf = PrivatePostfix(d, {"in": "", "relay": "-o content_filter=smtp:[127.0.0.1]:25"},
                        ["relayhost = [127.0.0.1]:2525", ...]).start()
    pf.ports["in"], pf.master_pid, pf.log()
    pf.stop()

From a shell (the main.cf lines of the instance on standard input; the
master's PID on standard output):

    python3 tests/e2e/private_postfix.py start DIR PORT < params
    python3 tests/e2e/private_postfix.py stop DIR

Everything lives under DIR: etc/ (main.cf, master.cf), spool/ (the queue),
data/, and the log postfix.log; nothing touches /etc/postfix or port 25.
main.cf holds what every instance needs (its directories, no local
delivery, 127.0.0.1 and IPv4 only) and then the caller's lines, which may
override any of them; master.cf one smtpd listener a name on 127.0.0.1 and
the standard services. The instance is stopped by its master's PID, never
by name: other Postfix instances may run on the machine. Needs root
(Postfix's master drops to the postfix user).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

__all__ = ["PrivatePostfix", "SERVICES", "stop_master", "free_port"]

# master.cf after the listeners: every service a relaying instance may use
SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# main.cf before the caller's lines
BASE_MAIN = """\
compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
biff = no
"""


def free_port():
    """A loopback TCP port nobody listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _open_path(d):
    """Let the postfix user traverse the directories down to d."""
    while d not in ("/", "/tmp", ""):
        if os.path.isdir(d):
            os.chmod(d, os.stat(d).st_mode | 0o011)
        d = os.path.dirname(d)


def _gone(pid):
    """The process has exited (a zombie of ours counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def stop_master(pid, timeout=20):
    """SIGTERM to a master (it stops its children), wait; SIGKILL after timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


class PrivatePostfix:
    """listeners: name -> arguments after "smtpd" in master.cf ("" for none);
    ports: name -> port for some of them (the others get a free one);
    params: main.cf lines after the base ones."""

    def __init__(self, d, listeners, params=(), ports=None):
        self.dir = os.path.abspath(str(d))
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.listeners = dict(listeners)
        self.params = list(params)
        self.ports = {name: (ports or {}).get(name) or free_port() for name in self.listeners}
        self.master_pid = None

    def main_cf(self):
        """The base lines with the caller's: a name given again replaces its base line."""
        lines = {}
        for line in BASE_MAIN.format(d=self.dir).splitlines() + self.params:
            name = line.split("=", 1)[0].strip()
            if name and not name.startswith("#"):
                lines[name] = line.strip()
        return "\n".join(lines.values()) + "\n"

    def write_config(self):
        for sub in ("etc", "spool", "data"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        _open_path(self.dir)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            for name, args in self.listeners.items():
                f.write(("127.0.0.1:%d inet n - n - - smtpd %s" % (self.ports[name], args))
                        .rstrip() + "\n")
            f.write(SERVICES)
        # Postfix waits until main.cf is a few seconds old ("to let it cool down").
        past = time.time() - 10
        for n in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.etc, n), (past, past))

    def start(self, timeout=20):
        self.write_config()
        # "postfix start" now and then fails without a word while other
        # instances start on the machine (its checks log to syslog only):
        # two more attempts, then the checks' own words in the failure.
        for _ in range(3):
            p = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True,
                               text=True, timeout=60)
            if p.returncode == 0:
                break
            time.sleep(0.5)
        else:
            c = subprocess.run(["postfix", "-v", "-c", self.etc, "check"], capture_output=True,
                               text=True, timeout=60)
            raise RuntimeError("postfix start: rc %d %s%s; check: %s%s; log: %s" % (
                p.returncode, p.stdout, p.stderr, c.stdout, c.stderr[-2000:], self.log()[-2000:]))
        pidfile = os.path.join(self.spool, "pid", "master.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    self.master_pid = int(f.read().strip())
            except (OSError, ValueError):
                self.master_pid = None
            if self.master_pid and all(_listening(p) for p in self.ports.values()):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("postfix did not start: " + self.log()[-3000:])

    def stop(self):
        if self.master_pid:
            stop_master(self.master_pid)
        self.master_pid = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "postfix.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def main(argv):
    if len(argv) == 4 and argv[1] == "start":
        pf = PrivatePostfix(argv[2], {"smtp": ""}, sys.stdin.read().splitlines(),
                            ports={"smtp": int(argv[3])}).start()
        print(pf.master_pid)
        return 0
    if len(argv) == 3 and argv[1] == "stop":
        try:
            with open(os.path.join(argv[2], "spool", "pid", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return 0                                     # not running
        stop_master(pid)
        return 0
    sys.stderr.write("usage: private_postfix.py start DIR PORT < main.cf-lines | stop DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
