"""certs.py - test certificates made with the openssl command.

    from certs import CertAuthority
    ca = CertAuthority(tmp_path / "ca")                 # a self-signed CA (EC P-256)
    key, cert = ca.issue(tmp_path / "keys", "server", cn="mx.test.example")
    key, cert = ca.issue(dir, "rsa", cn="x", key_type="rsa")  # RSA 2048
    ca.cert                                              # path of the CA certificate (PEM)

issue() writes NAME.key (mode 0600, unencrypted PEM) and NAME.pem (the leaf
followed by the CA certificate, i.e. a chain file) and returns their paths.
Each certificate gets a random serial (openssl's default), so a reload test
can tell two certificates apart by serial; subject_alt_name lists the
names and addresses a client may check. Everything runs `openssl` with a
timeout; nothing touches the network.
"""
import os
import subprocess

__all__ = ["CertAuthority", "openssl"]


def openssl(*args, input=None, timeout=60):
    """Run openssl with args; raises on a non-zero exit with its stderr."""
    p = subprocess.run(["openssl", *[str(a) for a in args]], input=input,
                       capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(map(str, args)),
                                                p.stderr.decode(errors="replace")))
    return p.stdout


def _genkey(path, key_type):
    if key_type == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", path)
    else:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", path)
    os.chmod(path, 0o600)


class CertAuthority:
    """A self-signed certificate authority in directory d."""

    def __init__(self, d, name="mtad test CA", days=30):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "ca.pem")
        _genkey(self.key, "ec")
        openssl("req", "-x509", "-new", "-key", self.key, "-sha256", "-days", days,
                "-subj", "/CN=%s" % name, "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", self.cert)

    def issue(self, d, name, cn="mx.test.example", sans=None, key_type="ec", days=30,
              chain=True):
        """A server key and certificate signed by this CA: (key_path, cert_path)."""
        d = str(d)
        os.makedirs(d, exist_ok=True)
        key = os.path.join(d, name + ".key")
        cert = os.path.join(d, name + ".pem")
        csr = os.path.join(d, name + ".csr")
        ext = os.path.join(d, name + ".ext")
        sans = sans or ["DNS:" + cn, "DNS:localhost", "IP:127.0.0.1"]
        _genkey(key, key_type)
        openssl("req", "-new", "-key", key, "-subj", "/CN=%s" % cn, "-out", csr)
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=%s\n" % ",".join(sans))
        leaf = openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                       "-CAcreateserial", "-sha256", "-days", days, "-extfile", ext)
        with open(cert, "wb") as f:
            f.write(leaf)
            if chain:
                with open(self.cert, "rb") as c:
                    f.write(c.read())
        os.unlink(csr)
        os.unlink(ext)
        return key, cert

    @staticmethod
    def serial(cert_path):
        """The serial of the first certificate in a PEM file, as openssl prints it (hex)."""
        out = openssl("x509", "-in", cert_path, "-noout", "-serial").decode()
        return out.strip().split("=", 1)[1].upper()
