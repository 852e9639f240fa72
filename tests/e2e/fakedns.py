"""fakedns.py - a scriptable DNS server on loopback for the delivery tests.

    from fakedns import FakeDNS
    with FakeDNS({
        "example.test": {"MX": [(10, "mx1.example.test"), (20, "mx2.example.test")]},
        "mx1.example.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
        "nullmx.test": {"MX": [(0, ".")]},
        "servfail.test": "SERVFAIL",     # answers SERVFAIL to every type
        "slow.test": "TIMEOUT",          # never answers (the resolver times out)
    }) as dns:
        conf = {"dns_servers": "127.0.0.1:%d" % dns.port}
        dns.set("mx1.example.test", {"A": ["127.0.0.3"]})   # change while running
        dns.set("mx1.example.test", None)                   # remove: NXDOMAIN

Semantics: a name not in the table -> NXDOMAIN; a name in the table without
the asked type -> NOERROR with no answer (NODATA). Names are case-insensitive
and the trailing dot is optional. Supported types: A, AAAA, MX, CNAME, TXT.
UDP and TCP listen on the same free port of 127.0.0.1. Every query is
recorded in .queries as (name, type) for assertions. TTL is 1 so a resolver
that caches does not hide .set() changes for long.
"""
import socket
import sys
import threading

try:
    from dnslib import DNSRecord, RR, QTYPE, RCODE, A, AAAA, MX, CNAME, TXT
    from dnslib.server import DNSServer, BaseResolver, DNSLogger, DNSError
except ImportError:  # pyenv's python3 does not see Debian's python3-dnslib
    sys.path.append("/usr/lib/python3/dist-packages")
    from dnslib import DNSRecord, RR, QTYPE, RCODE, A, AAAA, MX, CNAME, TXT
    from dnslib.server import DNSServer, BaseResolver, DNSLogger, DNSError

__all__ = ["FakeDNS"]


def _norm(name):
    name = str(name).lower()
    return name[:-1] if name.endswith(".") and name != "." else name


class _Resolver(BaseResolver):
    def __init__(self, owner):
        self.owner = owner

    def resolve(self, request, handler):
        q = request.q
        name = _norm(q.qname)
        qtype = QTYPE.get(q.qtype)
        with self.owner._lock:
            self.owner.queries.append((name, qtype))
            entry = self.owner._records.get(name)
        reply = request.reply()
        if entry is None or entry == "NXDOMAIN":
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if entry == "SERVFAIL":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if entry == "REFUSED":
            reply.header.rcode = RCODE.REFUSED
            return reply
        if entry == "TIMEOUT":
            raise DNSError("fakedns: dropping query for %s (TIMEOUT)" % name)
        if not isinstance(entry, dict):
            raise ValueError("fakedns: bad entry for %s: %r" % (name, entry))
        # Per-type special values: {"MX": "SERVFAIL"} fails only that type.
        val = entry.get(qtype)
        if val in ("SERVFAIL", "TIMEOUT", "REFUSED"):
            if val == "TIMEOUT":
                raise DNSError("fakedns: dropping query for %s/%s" % (name, qtype))
            reply.header.rcode = getattr(RCODE, val)
            return reply
        if "CNAME" in entry and qtype != "CNAME":
            target = entry["CNAME"]
            reply.add_answer(RR(q.qname, QTYPE.CNAME, ttl=1, rdata=CNAME(target)))
            return reply
        for rdata in self._rdatas(qtype, val or []):
            reply.add_answer(RR(q.qname, getattr(QTYPE, qtype), ttl=1, rdata=rdata))
        return reply

    @staticmethod
    def _rdatas(qtype, vals):
        out = []
        if isinstance(vals, (str, bytes, tuple)):
            vals = [vals]
        for v in vals:
            if qtype == "A":
                out.append(A(v))
            elif qtype == "AAAA":
                out.append(AAAA(v))
            elif qtype == "MX":
                pref, host = v
                out.append(MX(host if host != "." else ".", int(pref)))
            elif qtype == "CNAME":
                out.append(CNAME(v))
            elif qtype == "TXT":
                out.append(TXT(v))
        return out


class _QuietLogger(DNSLogger):
    def __init__(self):
        super().__init__(log="-recv,-send,-request,-reply,-truncated,-error,-data",
                         prefix=False, logf=lambda s: None)


class FakeDNS:
    """A DNS server on 127.0.0.1:<free port> (UDP and TCP) serving a dict."""

    def __init__(self, records=None, host="127.0.0.1"):
        self.host = host
        self._lock = threading.Lock()
        self._records = {}
        self.queries = []
        for k, v in (records or {}).items():
            self._records[_norm(k)] = v
        self._udp = None
        self._tcp = None
        self.port = None

    def set(self, name, value):
        """Replace the records of name (a dict or "SERVFAIL"/...); None removes it."""
        with self._lock:
            if value is None:
                self._records.pop(_norm(name), None)
            else:
                self._records[_norm(name)] = value

    def clear_queries(self):
        with self._lock:
            self.queries = []

    def queried(self, name, qtype=None):
        """Number of queries seen for name (and qtype when given)."""
        name = _norm(name)
        with self._lock:
            return sum(1 for n, t in self.queries if n == name and (qtype is None or t == qtype))

    def start(self):
        resolver = _Resolver(self)
        last = None
        for _ in range(50):  # find a port free for both UDP and TCP
            udp = DNSServer(resolver, port=0, address=self.host, logger=_QuietLogger())
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(resolver, port=port, address=self.host, tcp=True,
                                logger=_QuietLogger())
            except OSError as e:
                last = e
                udp.server.server_close()
                continue
            self._udp, self._tcp, self.port = udp, tcp, port
            for srv in (udp, tcp):  # poll often: stop() returns at once
                t = threading.Thread(target=srv.server.serve_forever,
                                     kwargs={"poll_interval": 0.05}, daemon=True)
                t.start()
            return self
        raise RuntimeError("fakedns: no free port: %s" % last)

    def stop(self):
        for s in (self._udp, self._tcp):
            if s is not None:
                s.server.shutdown()
                s.server.server_close()
        self._udp = self._tcp = None

    @property
    def addr(self):
        """"127.0.0.1:PORT", the form of mtad's dns_servers property."""
        return "%s:%d" % (self.host, self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


if __name__ == "__main__":  # manual use: python3 fakedns.py
    d = FakeDNS({"example.test": {"MX": [(10, "mx1.example.test")]},
                 "mx1.example.test": {"A": ["127.0.0.2"]}}).start()
    print("fakedns on", d.addr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        d.stop()
