"""nexthop.py - a scriptable SMTP next hop on loopback for the delivery tests.

A small threaded SMTP server (one thread per connection) that records what it
receives and can be told to misbehave at a chosen command, in the spirit of
Postfix's smtp-sink:

    from nexthop import NextHop
    with NextHop("127.0.0.2") as nh:           # free port: nh.port
        nh.tempfail("RCPT", rcpt="later@example.test")   # 451 4.3.0 for that one
        nh.permfail("DATAEND")                 # 550 5.1.1 after the dot
        nh.reply_at("MAIL", "452 4.3.1 full", times=1)   # only the first time
        nh.drop_at("DATA")                     # close the connection instead of replying
        nh.hang_at("RCPT")                     # never reply (client must time out)
        nh.refuse_ehlo = True                  # 502 to EHLO, so the client uses HELO
        nh.no_pipelining = True; nh.no_8bitmime = True; nh.size_limit = 1000
        nh.no_size = True                      # no SIZE keyword at all
        msgs = nh.wait_for(1, timeout=10)      # polls with a deadline
        msgs[0].sender, msgs[0].rcpts, msgs[0].data   # data: bytes, CRLF, un-dot-stuffed

Command names for the rules: CONNECT (the greeting), EHLO, HELO, STARTTLS, MAIL, RCPT,
DATA (the reply to the DATA command), DATAEND (the reply after "."), RSET,
NOOP, QUIT. A rule may be limited to one recipient (RCPT and DATAEND: the
DATAEND rule applies when that recipient was accepted in the transaction) and
to a number of uses (times=N, then it is gone). Rules are checked in the order
they were added; the first that matches wins. nh.reset() clears rules,
switches and recorded data.

Only "<CRLF>.<CRLF>" ends the data (a bare LF line "." does not). Everything
is bounded: lines over 64 KiB or messages over 64 MiB close the connection.
STARTTLS is offered when an ssl.SSLContext is given (tls_context=...); each
message records whether it came over TLS (.tls). nh.starttls_inject = b"..."
sends those bytes right behind the 220 to STARTTLS, in the same write (a
man in the middle injecting a reply before the handshake: a client must
drop them). nh.sni records the server names clients asked for (SNI).

SMTP AUTH (RFC 4954): nh.auth_mechs = ["PLAIN", "LOGIN", "XOAUTH2"] offers
them (after STARTTLS only, unless nh.auth_in_clear), nh.auth_users = {user:
password-or-token} is who may log in, nh.auths records (conn_id, mechanism,
user, ok). A rule at "AUTH" (reply_at, drop_at) replaces the exchange.
NextHop(..., implicit_tls=True) speaks TLS from the first byte (SMTPS).
"""
import base64
import json
import socket
import socketserver
import threading
import time

__all__ = ["NextHop", "Message"]

MAX_LINE = 65536
MAX_DATA = 64 * 1024 * 1024

DEFAULT_TEMPFAIL = "451 4.3.0 Temporary failure, try again later"
DEFAULT_PERMFAIL = "550 5.1.1 User unknown"


class Message:
    """One message as received: envelope, content and connection details."""

    def __init__(self, sender, rcpts, data, mail_params, helo, esmtp, tls, conn_id):
        self.sender = sender          # str, "" for <>
        self.rcpts = rcpts            # accepted recipients, in order
        self.data = data              # bytes, CRLF line ends, dot-stuffing removed
        self.mail_params = mail_params  # e.g. {"SIZE": "123", "BODY": "8BITMIME"}
        self.helo = helo              # the EHLO/HELO argument
        self.esmtp = esmtp            # True after EHLO, False after HELO
        self.tls = tls                # True when STARTTLS was done before
        self.conn_id = conn_id        # number of the connection (0, 1, ...)

    def __repr__(self):
        return "Message(from=<%s>, to=%r, %d bytes, conn=%d)" % (
            self.sender, self.rcpts, len(self.data), self.conn_id)


class _Rule:
    def __init__(self, at, action, reply, rcpt, times):
        self.at = at.upper()
        self.action = action          # "reply", "drop", "hang"
        self.reply = reply
        self.rcpt = rcpt.lower() if rcpt else None
        self.times = times            # None = forever


class _Closed(Exception):
    pass


class _Session:
    def __init__(self, nh, sock, conn_id):
        self.nh = nh
        self.sock = sock
        self.conn_id = conn_id
        self.rf = sock.makefile("rb")
        self.tls = False
        self.helo = None
        self.esmtp = False
        self.reset_txn()

    def reset_txn(self):
        self.sender = None
        self.rcpts = []
        self.mail_params = {}

    # I/O
    def send(self, line):
        try:
            self.sock.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")
        except OSError:
            raise _Closed()

    def readline(self):
        try:
            line = self.rf.readline(MAX_LINE + 1)
        except (OSError, ValueError):
            raise _Closed()
        if not line or len(line) > MAX_LINE:
            raise _Closed()
        return line

    # rule handling: returns True when the rule replaced the normal reply
    def apply(self, at, rcpt=None, rcpts=None):
        rule = self.nh._take_rule(at, rcpt, rcpts)
        if rule is None:
            return False
        if rule.action == "drop":
            raise _Closed()
        if rule.action == "hang":
            self.nh._stopping.wait(self.nh.hang_seconds)
            raise _Closed()
        self.send(rule.reply)
        return True

    def run(self):
        nh = self.nh
        if not self.apply("CONNECT"):
            self.send("220 %s ESMTP nexthop" % nh.name)
        while True:
            raw = self.readline()
            line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            nh._log(self.conn_id, line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "cmd_" + verb, None)
            if handler is None:
                self.send("502 5.5.2 Command not recognized")
                continue
            if handler(arg.strip()) == "quit":
                return

    def cmd_EHLO(self, arg):
        if self.nh.refuse_ehlo:
            self.send("502 5.5.2 Error: command not implemented")
            return
        if self.apply("EHLO"):
            return
        self.helo, self.esmtp = arg, True
        self.reset_txn()
        ext = []
        if not self.nh.no_pipelining:
            ext.append("PIPELINING")
        if not self.nh.no_size:
            ext.append("SIZE %d" % self.nh.size_limit if self.nh.size_limit else "SIZE")
        if not self.nh.no_8bitmime:
            ext.append("8BITMIME")
        if self.nh.smtputf8:
            ext.append("SMTPUTF8")
        if self.nh.tls_context is not None and not self.tls:
            ext.append("STARTTLS")
        if self.nh.auth_mechs and (self.tls or self.nh.auth_in_clear):
            ext.append("AUTH " + " ".join(self.nh.auth_mechs))
        ext.append("ENHANCEDSTATUSCODES")
        lines = [self.nh.name] + ext
        for i, l in enumerate(lines):
            self.send(("250 " if i == len(lines) - 1 else "250-") + l)

    def cmd_HELO(self, arg):
        if self.apply("HELO"):
            return
        self.helo, self.esmtp = arg, False
        self.reset_txn()
        self.send("250 %s" % self.nh.name)

    def cmd_STARTTLS(self, arg):
        if self.nh.tls_context is None or self.tls:
            self.send("502 5.5.1 STARTTLS not available")
            return
        if self.apply("STARTTLS"):
            return
        try:
            self.sock.sendall(b"220 2.0.0 Ready to start TLS\r\n" + self.nh.starttls_inject)
        except OSError:
            raise _Closed()
        try:
            # Whatever the client pipelined after STARTTLS is thrown away.
            plain = self.sock
            self.sock = self.nh.tls_context.wrap_socket(self.sock, server_side=True)
        except (OSError, ValueError):
            raise _Closed()
        self.nh._swap_sock(plain, self.sock)    # so that stop() can shut it down
        self.rf = self.sock.makefile("rb")
        self.tls = True
        self.helo = None
        self.reset_txn()

    def _b64line(self):
        raw = self.readline().rstrip(b"\r\n")
        self.nh._log(self.conn_id, "(auth data)")
        if raw == b"*":
            return None
        try:
            return base64.b64decode(raw, validate=True)
        except ValueError:
            return None

    def cmd_AUTH(self, arg):
        if self.helo is None or not self.esmtp:
            self.send("503 5.5.1 Error: send EHLO first")
            return
        if self.apply("AUTH"):
            return
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        if mech not in self.nh.auth_mechs:
            self.send("535 5.7.8 Error: authentication failed: mechanism not offered")
            return
        user = ok = None
        if mech == "PLAIN":
            if initial:
                data = base64.b64decode(initial)
            else:
                self.send("334 ")
                data = self._b64line()
            parts = (data or b"").split(b"\0")
            if len(parts) == 3:
                user, pw = parts[1].decode(), parts[2].decode()
                ok = self.nh.auth_users.get(user) == pw
        elif mech == "LOGIN":
            self.send("334 " + base64.b64encode(b"Username:").decode())
            u = self._b64line()
            self.send("334 " + base64.b64encode(b"Password:").decode())
            p = self._b64line()
            if u is not None and p is not None:
                user = u.decode()
                ok = self.nh.auth_users.get(user) == p.decode()
        elif mech == "XOAUTH2":
            data = base64.b64decode(initial) if initial else b""
            fields = dict(f.split(b"=", 1) for f in data.split(b"\x01") if b"=" in f)
            user = fields.get(b"user", b"").decode()
            tok = fields.get(b"auth", b"").decode()
            ok = tok == "Bearer " + self.nh.auth_users.get(user, "\0")
            if not ok:
                err = json.dumps({"status": "401", "schemes": "bearer",
                                  "scope": "https://mail.example/"}).encode()
                self.send("334 " + base64.b64encode(err).decode())
                self.readline()         # the client's empty response
        with self.nh._lock:
            self.nh.auths.append((self.conn_id, mech, user, bool(ok)))
        if ok:
            self.authed = user
            self.send("235 2.7.0 Authentication successful")
        else:
            self.send("535 5.7.8 Error: authentication failed: bad credentials")

    def cmd_MAIL(self, arg):
        if self.helo is None:
            self.send("503 5.5.1 Error: send HELO/EHLO first")
            return
        if self.sender is not None:
            self.send("503 5.5.1 Error: nested MAIL command")
            return
        if not arg.upper().startswith("FROM:"):
            self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        addr, params = _parse_path(arg[5:])
        if addr is None:
            self.send("501 5.1.7 Bad sender address syntax")
            return
        if self.apply("MAIL"):
            return
        if self.nh.size_limit and int(params.get("SIZE", "0") or 0) > self.nh.size_limit:
            self.send("552 5.3.4 Message size exceeds fixed limit")
            return
        self.sender, self.mail_params = addr, params
        self.send("250 2.1.0 Ok")

    def cmd_RCPT(self, arg):
        if self.sender is None:
            self.send("503 5.5.1 Error: need MAIL command")
            return
        if not arg.upper().startswith("TO:"):
            self.send("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        addr, _ = _parse_path(arg[3:])
        if not addr:
            self.send("501 5.1.3 Bad recipient address syntax")
            return
        if self.apply("RCPT", rcpt=addr):
            return
        self.rcpts.append(addr)
        self.send("250 2.1.5 Ok")

    def cmd_DATA(self, arg):
        if self.sender is None:
            self.send("503 5.5.1 Error: need MAIL command")
            return
        if not self.rcpts:
            self.send("554 5.5.1 Error: no valid recipients")
            return
        if self.apply("DATA"):
            self.reset_txn()
            return
        self.send("354 End data with <CR><LF>.<CR><LF>")
        chunks, total = [], 0
        while True:
            line = self.readline()
            if line == b".\r\n":
                break
            if line.startswith(b"."):
                line = line[1:]
            total += len(line)
            if total > MAX_DATA:
                raise _Closed()
            chunks.append(line)
        data = b"".join(chunks)
        rcpts = list(self.rcpts)
        msg = Message(self.sender, rcpts, data, dict(self.mail_params), self.helo,
                      self.esmtp, self.tls, self.conn_id)
        self.reset_txn()
        if self.apply("DATAEND", rcpts=rcpts):
            self.nh._record_rejected(msg)
            return
        self.nh._record(msg)
        self.send("250 2.0.0 Ok: queued as NH%d" % len(self.nh.messages))

    def cmd_RSET(self, arg):
        if self.apply("RSET"):
            return
        self.reset_txn()
        self.send("250 2.0.0 Ok")

    def cmd_NOOP(self, arg):
        if self.apply("NOOP"):
            return
        self.send("250 2.0.0 Ok")

    def cmd_QUIT(self, arg):
        self.nh._note_quit()
        if self.apply("QUIT"):
            return "quit"
        self.send("221 2.0.0 Bye")
        return "quit"


def _parse_path(s):
    """'<a@b> SIZE=1 BODY=8BITMIME' -> ('a@b', {'SIZE': '1', 'BODY': '8BITMIME'})."""
    s = s.strip()
    if not s.startswith("<"):
        return None, {}
    end = s.find(">")
    if end < 0:
        return None, {}
    addr = s[1:end]
    params = {}
    for tok in s[end + 1:].split():
        k, _, v = tok.partition("=")
        params[k.upper()] = v
    return addr, params


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        nh = self.server.nexthop
        conn_id = nh._new_conn(self.request)
        sock = self.request
        if nh.implicit_tls:
            try:
                sock = nh.tls_context.wrap_socket(sock, server_side=True)
            except (OSError, ValueError):
                nh._end_conn(self.request)
                return
            nh._swap_sock(self.request, sock)
        sess = _Session(nh, sock, conn_id)
        sess.tls = nh.implicit_tls
        try:
            sess.run()
        except _Closed:
            pass
        finally:
            nh._end_conn(self.request)
            nh._end_conn(sess.sock)
            try:
                sess.sock.close()
            except OSError:
                pass


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class NextHop:
    """A scriptable SMTP server on (host, port); port 0 picks a free one."""

    def __init__(self, host="127.0.0.1", port=0, name="nexthop.test", tls_context=None,
                 implicit_tls=False):
        self.implicit_tls = implicit_tls
        self.host = host
        self.port = port
        self.name = name
        self.tls_context = tls_context
        if tls_context is not None:
            tls_context.sni_callback = self._note_sni
        self.hang_seconds = 600      # upper bound of a hang; stop() ends it at once
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self._socks = set()
        self.reset()

    def reset(self):
        """Back to a well-behaved server; forget everything recorded."""
        with getattr(self, "_lock", threading.Lock()):
            self._rules = []
            self.refuse_ehlo = False
            self.no_pipelining = False
            self.no_8bitmime = False
            self.smtputf8 = True
            self.size_limit = None      # advertised as "SIZE n"; None: "SIZE" (no limit)
            self.no_size = False        # True: no SIZE in the EHLO reply
            self.starttls_inject = b""  # bytes sent behind the 220 to STARTTLS
            self.sni = []               # server names asked for in TLS handshakes
            self.messages = []          # accepted messages (250 after the dot)
            self.rejected = []          # messages refused after the dot
            self.commands = []          # (conn_id, line) for every command line
            self.connections = 0
            self.quits = 0
            self.auth_mechs = []        # offered in EHLO (after TLS unless auth_in_clear)
            self.auth_in_clear = False
            self.auth_users = {}        # user -> password (or XOAUTH2 token)
            self.auths = []             # (conn_id, mechanism, user, ok)

    # scripting
    def reply_at(self, at, reply, rcpt=None, times=None):
        """Answer `reply` (e.g. "452 4.3.1 full") at command `at`."""
        with self._lock:
            self._rules.append(_Rule(at, "reply", reply, rcpt, times))

    def tempfail(self, at, rcpt=None, times=None, reply=DEFAULT_TEMPFAIL):
        self.reply_at(at, reply, rcpt, times)

    def permfail(self, at, rcpt=None, times=None, reply=DEFAULT_PERMFAIL):
        self.reply_at(at, reply, rcpt, times)

    def drop_at(self, at, rcpt=None, times=None):
        """Close the connection instead of replying to `at`."""
        with self._lock:
            self._rules.append(_Rule(at, "drop", None, rcpt, times))

    def hang_at(self, at, rcpt=None, times=None):
        """Never reply to `at` (until stop() or hang_seconds)."""
        with self._lock:
            self._rules.append(_Rule(at, "hang", None, rcpt, times))

    def accept(self):
        """Remove every rule: accept everything from now on."""
        with self._lock:
            self._rules = []

    # observation
    def wait_for(self, n, timeout=10.0):
        """Wait until at least n messages were accepted; returns the list."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
                have = len(self.messages)
            if time.monotonic() > deadline:
                raise AssertionError("nexthop %s:%d: %d message(s) after %.1fs, want %d"
                                     % (self.host, self.port, have, timeout, n))
            time.sleep(0.02)

    def wait_until(self, pred, timeout=10.0, what="condition"):
        """Poll pred(self) with a deadline."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                v = pred(self)
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError("nexthop: timed out waiting for " + what)
            time.sleep(0.02)

    def verbs(self, conn_id=None):
        """The command verbs seen, in order (optionally of one connection)."""
        with self._lock:
            return [l.split(" ", 1)[0].upper() for c, l in self.commands
                    if conn_id is None or c == conn_id]

    @property
    def addr(self):
        return "[%s]:%d" % (self.host, self.port)

    # life cycle
    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        _Server.address_family = fam
        srv = _Server((self.host, self.port), _Handler, bind_and_activate=False)
        srv.address_family = fam
        srv.socket = socket.socket(fam, socket.SOCK_STREAM)
        srv.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.server_bind()
        srv.server_activate()
        srv.nexthop = self
        self.port = srv.server_address[1]
        self._server = srv
        self._stopping.clear()
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # internal, called from connection threads
    def _take_rule(self, at, rcpt, rcpts):
        with self._lock:
            for r in self._rules:
                if r.at != at:
                    continue
                if r.rcpt is not None:
                    if rcpt is not None and rcpt.lower() != r.rcpt:
                        continue
                    if rcpts is not None and r.rcpt not in [x.lower() for x in rcpts]:
                        continue
                    if rcpt is None and rcpts is None:
                        continue
                if r.times is not None:
                    r.times -= 1
                    if r.times <= 0:
                        self._rules.remove(r)
                return r
        return None

    def _new_conn(self, sock):
        with self._lock:
            self._socks.add(sock)
            n = self.connections
            self.connections += 1
            return n

    def _swap_sock(self, old, new):
        with self._lock:
            self._socks.discard(old)
            self._socks.add(new)

    def _end_conn(self, sock):
        with self._lock:
            self._socks.discard(sock)

    def _log(self, conn_id, line):
        with self._lock:
            self.commands.append((conn_id, line))

    def _record(self, msg):
        with self._lock:
            self.messages.append(msg)

    def _record_rejected(self, msg):
        with self._lock:
            self.rejected.append(msg)

    def _note_sni(self, sslobj, name, ctx):
        with self._lock:
            self.sni.append(name)
        return None

    def _note_quit(self):
        with self._lock:
            self.quits += 1


if __name__ == "__main__":  # manual use: python3 nexthop.py [host [port]]
    import sys
    h = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.2"
    p = int(sys.argv[2]) if len(sys.argv) > 2 else 2525
    with NextHop(h, p) as nh:
        print("nexthop on %s" % nh.addr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
