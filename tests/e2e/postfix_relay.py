"""postfix_relay.py - a private Postfix instance on loopback as an upstream
relay that demands SMTP AUTH (Cyrus SASL, sasldb), for the relay tests and
bench/relay_bench.sh.

    from postfix_relay import PostfixRelay
    with PostfixRelay(tmp_path / "pf", cert, key, sink_port, users={"u": "pw"}) as pf:
        pf.starttls_port      # STARTTLS, AUTH PLAIN and LOGIN after TLS
        pf.login_port         # STARTTLS, AUTH LOGIN only
        pf.smtps_port         # implicit TLS (smtpd_tls_wrappermode), PLAIN and LOGIN
        pf.log()              # Postfix's own mail log

Everything lives under the given directory: config_directory,
queue_directory, data_directory, the sasldb and Postfix's log; nothing
touches /etc/postfix or port 25. Clients on 127.0.0.1 are not in
mynetworks: only an authenticated client may relay, and AUTH is offered only
over TLS (smtpd_tls_auth_only). Accepted mail goes to relayhost =
[127.0.0.1]:sink_port. The instance is stopped by its master's PID (never
by name: other Postfix instances may run on the machine). Needs root
(Postfix's master) and the postfix, sasl2-bin and libsasl2-modules packages.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import time

__all__ = ["PostfixRelay", "available"]

MASTER_CF = """\
127.0.0.1:{starttls} inet n - n - - smtpd
127.0.0.1:{login} inet n - n - - smtpd -o smtpd_sasl_path=smtpd_login
127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
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

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydomain = test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.2/32
relayhost = [127.0.0.1]:{sink}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {d}/etc/sasl
smtpd_sasl_local_domain = relay.test
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_session_cache_database = btree:${{data_directory}}/smtpd_scache
smtpd_tls_loglevel = 1
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
biff = no
"""

SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: {mechs}
sasldb_path: {db}
"""


def available():
    """Root, postfix and saslpasswd2 installed: the tests can run."""
    return os.geteuid() == 0 and bool(shutil.which("postfix")) and \
        bool(shutil.which("saslpasswd2")) and bool(glob.glob("/usr/lib/*/sasl2/libsasldb.so*"))


def _free_port():
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


class PostfixRelay:
    def __init__(self, d, cert, key, sink_port, users):
        self.dir = str(d)
        self.cert, self.key, self.sink_port, self.users = str(cert), str(key), sink_port, users
        self.starttls_port = _free_port()
        self.login_port = _free_port()
        self.smtps_port = _free_port()
        self.master_pid = None

    def _run(self, *args, input=None):
        p = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("%s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def start(self):
        d = self.dir
        # Debian's Postfix reads $config_directory/sasl/smtpd.conf
        for sub in ("etc", "etc/sasl", "spool", "data"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        p = d
        while p not in ("/", "/tmp") and os.path.isdir(p):
            os.chmod(p, os.stat(p).st_mode | 0o711)     # postfix (smtpd) must reach its files
            p = os.path.dirname(p)
        shutil.chown(os.path.join(d, "data"), "postfix")
        with open(os.path.join(d, "etc", "main.cf"), "w") as f:
            f.write(MAIN_CF.format(d=d, sink=self.sink_port, cert=self.cert, key=self.key))
        with open(os.path.join(d, "etc", "master.cf"), "w") as f:
            f.write(MASTER_CF.format(starttls=self.starttls_port, login=self.login_port,
                                     smtps=self.smtps_port))
        db = os.path.join(d, "etc", "sasl", "sasldb2")
        for user, pw in self.users.items():
            self._run("saslpasswd2", "-f", db, "-p", "-c", "-u", "relay.test", user,
                      input=pw + "\n")
        shutil.chown(db, "postfix")
        os.chmod(db, 0o640)
        for name, mechs in (("smtpd", "PLAIN LOGIN"), ("smtpd_login", "LOGIN")):
            with open(os.path.join(d, "etc", "sasl", name + ".conf"), "w") as f:
                f.write(SASL_CONF.format(mechs=mechs, db=db))
        for f in (self.cert, self.key):
            os.chmod(f, 0o644)
        self._run("postfix", "-c", os.path.join(d, "etc"), "check")
        self._run("postfix", "-c", os.path.join(d, "etc"), "start")
        pidfile = os.path.join(d, "spool", "pid", "master.pid")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    self.master_pid = int(f.read().strip())
            except (OSError, ValueError):
                self.master_pid = None
            if self.master_pid and all(_listening(p) for p in
                                       (self.starttls_port, self.login_port, self.smtps_port)):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("postfix did not start: " + self.log())

    def stop(self):
        """SIGTERM to this instance's master (it stops its children), then wait."""
        if not self.master_pid:
            return
        try:
            os.kill(self.master_pid, signal.SIGTERM)
        except ProcessLookupError:
            self.master_pid = None
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(self.master_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
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
