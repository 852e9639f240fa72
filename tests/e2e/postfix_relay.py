"""postfix_relay.py - a private Postfix instance on loopback as an upstream
relay that demands SMTP AUTH (Cyrus SASL, sasldb), for the relay tests and
bench/relay_bench.py, started by private_postfix.py.

    from postfix_relay import PostfixRelay
    with PostfixRelay(tmp_path / "pf", cert, key, sink_port, users={"u": "pw"}) as pf:
        pf.starttls_port      # STARTTLS, AUTH PLAIN and LOGIN after TLS
        pf.login_port         # STARTTLS, AUTH LOGIN only
        pf.smtps_port         # implicit TLS (smtpd_tls_wrappermode), PLAIN and LOGIN
        pf.log()              # Postfix's own mail log

Everything lives under the given directory (private_postfix.py: etc/,
spool/, data/, postfix.log) with the sasldb in etc/sasl; nothing touches
/etc/postfix or port 25. Clients on 127.0.0.1 are not in
mynetworks: only an authenticated client may relay, and AUTH is offered only
over TLS (smtpd_tls_auth_only). Accepted mail goes to relayhost =
[127.0.0.1]:sink_port. The instance is stopped by its master's PID (never
by name: other Postfix instances may run on the machine). Needs root
(Postfix's master) and the postfix, sasl2-bin and libsasl2-modules packages.
"""
import glob
import os
import shutil
import subprocess

from private_postfix import PrivatePostfix

__all__ = ["PostfixRelay", "available"]

# the relay's main.cf lines, after private_postfix.py's base ones
MAIN_CF = """\
myhostname = relay.test
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
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
"""

# the three listeners (master.cf arguments after "smtpd")
LISTENERS = {
    "starttls": "",
    "login": "-o smtpd_sasl_path=smtpd_login",
    "smtps": "-o smtpd_tls_wrappermode=yes",
}

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


class PostfixRelay:
    def __init__(self, d, cert, key, sink_port, users):
        self.dir = os.path.abspath(str(d))
        self.cert, self.key, self.sink_port, self.users = str(cert), str(key), sink_port, users
        self.pf = PrivatePostfix(self.dir, LISTENERS, MAIN_CF.format(
            d=self.dir, sink=sink_port, cert=self.cert, key=self.key).splitlines())
        self.starttls_port = self.pf.ports["starttls"]
        self.login_port = self.pf.ports["login"]
        self.smtps_port = self.pf.ports["smtps"]

    @property
    def master_pid(self):
        return self.pf.master_pid

    def _run(self, *args, input=None):
        p = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("%s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def start(self):
        # Debian's Postfix reads $config_directory/sasl/smtpd.conf
        sasl = os.path.join(self.dir, "etc", "sasl")
        os.makedirs(sasl, exist_ok=True)
        db = os.path.join(sasl, "sasldb2")
        for user, pw in self.users.items():
            self._run("saslpasswd2", "-f", db, "-p", "-c", "-u", "relay.test", user,
                      input=pw + "\n")
        shutil.chown(db, "postfix")
        os.chmod(db, 0o640)
        for name, mechs in (("smtpd", "PLAIN LOGIN"), ("smtpd_login", "LOGIN")):
            with open(os.path.join(sasl, name + ".conf"), "w") as f:
                f.write(SASL_CONF.format(mechs=mechs, db=db))
        for f in (self.cert, self.key):
            os.chmod(f, 0o644)
        self.pf.start()
        return self

    def stop(self):
        """SIGTERM to this instance's master (it stops its children), then wait."""
        self.pf.stop()

    def log(self):
        return self.pf.log()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
