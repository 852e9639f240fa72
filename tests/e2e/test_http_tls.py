"""mtactl verifies the UI's certificate when ui_address is not loopback (issue 9, finding 12).

The UI needs an address that is not loopback: each test runs mtad and mtactl
in a network namespace of its own (unshare -n) whose lo carries 192.0.2.10
(TEST-NET-1) besides 127.0.0.1, so no packet leaves the namespace.
"""
import os
import shutil
import subprocess

import pytest

from certs import CertAuthority
from conftest import BIN_DIR, MTAD_BIN, free_port

UI_ADDR = "192.0.2.10"

# Inside the namespace: bring lo up with the extra address, start mtad, wait
# (bounded) for the UI, run mtactl with each configuration given, stop mtad.
SCRIPT = r"""
set -u
ip link set lo up && ip addr add %(addr)s/32 dev lo || exit 90
"%(mtad)s" -c "%(conf)s" >"%(log)s" 2>&1 &
pid=$!
i=0
until curl -sk -o /dev/null https://%(addr)s:%(port)s/healthz || [ $i -ge 100 ]; do
    i=$((i + 1)); sleep 0.1
done
for c in %(confs)s; do
    "%(mtactl)s" -c "$c" stats >"$c.out" 2>"$c.err"
    echo $? >"$c.rc"
done
kill -TERM $pid
wait $pid
"""


def netns_ready():
    if shutil.which("unshare") is None or shutil.which("ip") is None or \
            shutil.which("curl") is None:
        return "unshare, ip and curl are needed"
    p = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    return None if p.returncode == 0 else "cannot make a network namespace here"


def write_conf(path, conf):
    with open(path, "w") as f:
        for k, v in conf.items():
            f.write("%s = %s\n" % (k, v))
    os.chmod(path, 0o644)


def run_in_netns(tmp_path, conf, confs):
    """Start mtad with conf, run `mtactl -c C stats` for each C in confs: {C: (rc, out, err)}."""
    paths = []
    main = str(tmp_path / "mtad.conf")
    write_conf(main, conf)
    for name, c in confs.items():
        p = str(tmp_path / ("%s.conf" % name))
        write_conf(p, c)
        paths.append(p)
    script = SCRIPT % {"addr": UI_ADDR, "mtad": MTAD_BIN, "mtactl": os.path.join(BIN_DIR, "mtactl"),
                       "conf": main, "port": conf["ui_port"], "log": str(tmp_path / "mtad.stderr"),
                       "confs": " ".join(paths)}
    p = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, (p.returncode, p.stderr, open(tmp_path / "mtad.stderr").read())
    out = {}
    for name, path in zip(confs, paths):
        out[name] = (int(open(path + ".rc").read()), open(path + ".out").read(),
                     open(path + ".err").read())
    return out


@pytest.fixture
def tls_conf(tmp_path):
    why = netns_ready()
    if why:
        pytest.skip(why)
    ca = CertAuthority(tmp_path / "ca")
    key_dir = tmp_path / "keys"
    ca.issue(key_dir, "server", cn="mx.test.example")
    other = CertAuthority(tmp_path / "other-ca", name="another CA")
    other.issue(tmp_path / "other-keys", "server", cn="mx.test.example")
    data = tmp_path / "data"
    conf = {
        "data_dir": str(data),
        "hostname": "mx.test.example",
        "smtp_listen": "127.0.0.1:%d" % free_port(),
        "smtps_listen": "",
        "ui_address": UI_ADDR,
        "ui_port": str(free_port()),
        "username": "admin",
        "password": "pw",
        "dns_servers": "127.0.0.1:1",
        "ssl_disabled": "no",
        "key_dir": str(key_dir),
        "ssl_key_file": "server.key",
        "ssl_cert_file": "server.pem",
    }
    return conf, tmp_path


def test_mtactl_verifies_the_ui_certificate(tls_conf):
    conf, tmp = tls_conf
    wrong_name = dict(conf, hostname="other.test.example")
    other_ca = dict(conf, key_dir=str(tmp / "other-keys"))
    r = run_in_netns(tmp, conf, {"good": conf, "wrong_name": wrong_name, "other_ca": other_ca})
    # The certificate of the key store, for hostname: verified and used.
    rc, out, err = r["good"]
    assert rc == 0 and out.strip(), r["good"]
    # A certificate for another name: refused, never retried in plain HTTP.
    rc, out, err = r["wrong_name"]
    assert rc != 0 and "TLS:" in err and "mismatch" in err, r["wrong_name"]
    # Signed by a CA mtactl does not trust: refused.
    rc, out, err = r["other_ca"]
    assert rc != 0 and "TLS:" in err and ("issuer" in err or "self-signed" in err), r["other_ca"]
