"""peers.py - private instances of real MTAs for the interoperability tests.

    from peers import PostfixPeer, EximPeer, skip_reason
    pf = PostfixPeer(tmp_path / "postfix", relayhost=nh.port, ca=ca, ...).start()
    pf.ports["in"], pf.maillog(), pf.stop()
    ex = EximPeer(tmp_path / "exim", relay_port=nh.port, ca=ca, ...).start()
    ex.port, ex.mainlog(), ex.stop()

PostfixPeer is Debian's postfix started by private_postfix.py (`postfix -c
DIR/etc start`) with its own config_directory, queue_directory and
data_directory under DIR, listening on loopback ports only; it never touches /etc/postfix or port 25. It is stopped
by SIGTERM to its master's PID (from its own pid file), never by name.

EximPeer is Exim 4 (exim4-daemon-light) unpacked from the Debian packages,
not installed (that package removes postfix): MTAD_EXIM_DIR, /opt/peers/exim
or build/peers/exim (tools/peers_setup.sh makes one). Exim re-executes itself
by its compiled-in path /usr/sbin/exim4 and reads /etc/exim4/exim4.conf, so
it runs in a private mount namespace (unshare) in which the unpacked
/usr/sbin and DIR/etc are mounted on those paths; its daemon is our child
and is stopped by SIGTERM to its PID.

Both need root (they drop to their own users: postfix, Debian-exim) and
skip_reason() says why a peer cannot run here. The directories above DIR are
opened to others (o+x), as their unprivileged processes must reach DIR.
"""
import os
import shutil
import signal
import subprocess

from conftest import ROOT, free_port, port_open, wait_until
from private_postfix import PrivatePostfix

__all__ = ["PostfixPeer", "EximPeer", "skip_reason", "exim_dir", "open_path"]


def open_path(d):
    """Let unprivileged peer processes traverse the directories down to d."""
    d = str(d)
    while d not in ("/", "/tmp", ""):
        if os.path.isdir(d):
            os.chmod(d, os.stat(d).st_mode | 0o011)
        d = os.path.dirname(d)


def exim_dir():
    for d in (os.environ.get("MTAD_EXIM_DIR"), "/opt/peers/exim",
              os.path.join(ROOT, "build", "peers", "exim")):
        if d and os.access(os.path.join(d, "usr", "sbin", "exim4"), os.X_OK):
            return d
    return None


def _user_exists(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def skip_reason(peer):
    """None when peer ("postfix" or "exim") can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (the peer drops to its own user)"
    if peer == "postfix":
        if not shutil.which("postfix") or not os.path.exists("/usr/lib/postfix/sbin/master"):
            return "postfix is not installed (apt-get install postfix)"
        if not _user_exists("postfix"):
            return "no postfix user"
        return None
    d = exim_dir()
    if d is None:
        return "exim is not unpacked under /opt/peers/exim or build/peers/exim " \
               "(tools/peers_setup.sh; never apt-get install exim4*, it removes postfix)"
    if not _user_exists("Debian-exim"):
        return "no Debian-exim user (tools/peers_setup.sh)"
    if not shutil.which("unshare"):
        return "no unshare (util-linux)"
    p = subprocess.run([os.path.join(d, "usr", "sbin", "exim4"), "-C", "/dev/null", "-bV"],
                       capture_output=True, text=True, timeout=30)
    if "Exim version" not in p.stdout:
        return "exim does not run: " + (p.stderr.strip() or p.stdout.strip())[:200]
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        return "cannot make a mount namespace: " + p.stderr.strip()[:200]
    return None


class PostfixPeer:
    """A private Postfix instance.

    Listeners (self.ports): "in" routes by domain (transport_maps: domains in
    `via` go to their [host]:port, the rest to relayhost), "relay" sends
    everything it receives to relayhost (content_filter), so that a message
    can pass Postfix, mtad and Postfix again without a loop. TLS on both
    listeners when ca is given (server certificate postfix.test from ca);
    the client side verifies the peers named in `secure` (a dict
    "[127.0.0.1]:port" -> certificate name) against ca.cert.
    reject: recipients answered "550 5.1.1 <rcpt>: Recipient address rejected:
    no such user" at RCPT.
    """

    def __init__(self, d, relayhost, ca=None, via=None, secure=None, reject=()):
        self.dir = str(d)
        self.relayhost = relayhost
        self.ca = ca
        self.via = via or {}
        self.secure = secure or {}
        self.reject = list(reject)
        self.pf = PrivatePostfix(self.dir, {
            "in": "",
            "relay": "-o content_filter=smtp:%s" % relayhost,
        })
        self.ports = self.pf.ports

    @property
    def master_pid(self):
        return self.pf.master_pid

    def _main_cf(self):
        def inline(pairs):
            return "inline:{ %s }" % " ".join("{ %s = %s }" % kv for kv in pairs)

        # after private_postfix.py's base lines (directories, postfix.test, no local delivery)
        lines = [
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "relayhost = %s" % self.relayhost,
            "smtputf8_enable = yes",
            "smtp_connect_timeout = 5s",
            "delay_warning_time = 0",
            "queue_run_delay = 5s",
            "minimal_backoff_time = 5s",
            "maximal_backoff_time = 10s",
        ]
        if self.via:
            lines.append("transport_maps = %s" % inline(
                (dom, "smtp:%s" % hop) for dom, hop in sorted(self.via.items())))
        if self.reject:
            lines.append("smtpd_recipient_restrictions = check_recipient_access %s" % inline(
                (r, "550 5.1.1 no such user") for r in self.reject))
        if self.ca is not None:
            key, cert = self.ca.issue(os.path.join(self.dir, "tls"), "postfix", cn="postfix.test")
            lines += [
                "smtpd_tls_cert_file = %s" % cert,
                "smtpd_tls_key_file = %s" % key,
                "smtpd_tls_security_level = may",
                "smtpd_tls_loglevel = 1",
                "smtpd_tls_received_header = yes",
                "smtp_tls_security_level = may",
                "smtp_tls_loglevel = 1",
                "smtp_tls_CAfile = %s" % self.ca.cert,
            ]
            if self.secure:
                lines.append("smtp_tls_policy_maps = %s" % inline(
                    (hop, "secure match=%s" % name) for hop, name in sorted(self.secure.items())))
        return lines

    def start(self):
        self.pf.params = self._main_cf()
        self.pf.start()
        return self

    def stop(self):
        self.pf.stop()

    def maillog(self):
        return self.pf.log()


class EximPeer:
    """A private Exim daemon on 127.0.0.1:port that relays everything to
    127.0.0.1:relay_port (manualroute, plain SMTP). STARTTLS offered with a
    certificate exim.test from ca; recipients in `reject` get 550 at RCPT."""

    def __init__(self, d, relay_port, ca=None, reject=()):
        self.dir = str(d)
        self.exim = exim_dir()
        self.relay_port = relay_port
        self.ca = ca
        self.reject = list(reject)
        self.port = free_port()
        self.etc = os.path.join(self.dir, "etc")
        self.proc = None

    def _conf(self):
        d = self.dir
        tls = "tls_advertise_hosts =\n"
        if self.ca is not None:
            key, cert = self.ca.issue(os.path.join(d, "tls"), "exim", cn="exim.test")
            os.chmod(key, 0o644)     # a throw-away test key: Exim reads it as Debian-exim
            tls = ("tls_advertise_hosts = *\ntls_certificate = %s\ntls_privatekey = %s\n"
                   % (cert, key))
        deny = ""
        for r in self.reject:
            lp, dom = r.rsplit("@", 1)
            deny += ("  deny   local_parts = %s\n         domains = %s\n"
                     "         message = 5.1.1 <$local_part@$domain>: no such user\n" % (lp, dom))
        return """primary_hostname = exim.test
qualify_domain = exim.test
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
disable_ipv6 = true
domainlist local_domains =
hostlist relay_from_hosts = 127.0.0.0/8
acl_smtp_rcpt = acl_check_rcpt
host_lookup =
rfc1413_hosts =
never_users = root
keep_environment =
smtputf8_advertise_hosts = *
accept_8bitmime = true
log_selector = +tls_cipher +received_recipients +8bitmime
{tls}
begin acl
acl_check_rcpt:
{deny}  accept hosts = +relay_from_hosts
  deny   message = relay not permitted

begin routers
onward:
  driver = manualroute
  domains = ! +local_domains
  transport = onward_smtp
  route_list = * 127.0.0.1
  self = send
  no_more

begin transports
onward_smtp:
  driver = smtp
  port = {relay}
  hosts_avoid_tls = *
  allow_localhost

begin retry
*   *   F,1m,5s
""".format(d=d, port=self.port, tls=tls, deny=deny, relay=self.relay_port)

    def start(self):
        for sub in ("spool", "log", "etc"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        for sub in ("spool", "log"):
            shutil.chown(os.path.join(self.dir, sub), "Debian-exim", "Debian-exim")
        with open(os.path.join(self.etc, "exim4.conf"), "w") as f:
            f.write(self._conf())
        os.chmod(os.path.join(self.etc, "exim4.conf"), 0o644)
        os.makedirs("/etc/exim4", exist_ok=True)     # the mount point (empty on the host)
        open_path(self.dir)
        self.out = open(os.path.join(self.dir, "exim.out"), "ab")
        # unshare execs sh, which execs exim: the daemon keeps this PID.
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
             'mount --bind "$1/usr/sbin" /usr/sbin && mount --bind "$2" /etc/exim4 && '
             'shift 2 && exec "$@"', "sh", self.exim, self.etc,
             "/usr/sbin/exim4", "-bdf", "-q5s"],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("exim exited with %s: %s" % (
                    self.proc.returncode, open(os.path.join(self.dir, "exim.out")).read()[-2000:]))
            return port_open("127.0.0.1", self.port)
        wait_until(up, 20, what="exim to listen on %d" % self.port)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.proc = None

    def mainlog(self):
        try:
            with open(os.path.join(self.dir, "log", "mainlog"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""
