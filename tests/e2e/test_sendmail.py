"""sendmail: local submission to a running mtad over loopback SMTP.

Each test submits with the real sendmail binary and then reads what mtad
queued (envelope through `mtactl show --json`, content through
`mtactl show --body`), so line ends, dot-stuffing, Bcc removal and the
envelope are checked on the stored message. Delivery goes to
[127.0.0.1]:1, where nothing listens, so messages stay queued.
"""
import json
import os
import subprocess

import pytest

from conftest import BIN_DIR, wait_until

SENDMAIL = os.path.join(BIN_DIR, "sendmail")
MTACTL = os.path.join(BIN_DIR, "mtactl")
DEFER = {"smart_relay": "[127.0.0.1]:1"}

# sysexits.h
EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 64, 65, 69, 75, 78



def queued_ids(m):
    """Queue ids of the message files in data_dir/queue that have content:
    the queue keeps empty spare files there, which are not messages."""
    qdir = os.path.join(m.data_dir, "queue")
    try:
        names = os.listdir(qdir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.getsize(os.path.join(qdir, n)) > 0)

def sendmail(m, args, data, conf=None, timeout=60):
    if isinstance(data, str):
        data = data.encode()
    return subprocess.run([SENDMAIL, "-C", conf or m.conf_path, *args], input=data,
                          env=m.env, capture_output=True, timeout=timeout)


def ctl(m, *args):
    p = subprocess.run([MTACTL, "-c", m.conf_path, *args], env=m.env, capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def queued(m):
    """{queue id: (envelope json, content bytes)} of everything queued."""
    out = {}
    for qid in queued_ids(m):
        env = json.loads(ctl(m, "show", qid, "--json"))
        body = ctl(m, "show", qid, "--body").split(b"\n\n", 1)[1]
        out[qid] = (env, body)
    return out


def only(m):
    q = queued(m)
    assert len(q) == 1, list(q)
    env, content = next(iter(q.values()))
    # what the client sent: drop the headers mtad prepends
    assert content.startswith(b"Received: ")
    return env, content


def rcpts(env):
    return [r["address"] for r in env["recipients"]]


def crlf_only(content):
    return content.count(b"\n") == content.count(b"\r\n") and b"\r\r" not in content


@pytest.fixture
def m(mtad_factory):
    return mtad_factory(conf=DEFER)


def test_command_line_recipients_bare_lf(m):
    data = ("From: App <app@example.org>\nSubject: bare LF\n\nline one\n"
            ".starts with a dot\n..two dots\nlast line without newline")
    p = sendmail(m, ["-f", "bounce@example.org", "a@example.net", "B <b@example.net>"], data)
    assert p.returncode == 0, p.stderr
    # exit 0 means queued: the file is there at once, no waiting
    assert len(queued_ids(m)) == 1
    env, content = only(m)
    assert env["sender"] == "bounce@example.org"
    assert rcpts(env) == ["a@example.net", "b@example.net"]
    assert crlf_only(content), content
    assert content.endswith(b"\r\nFrom: App <app@example.org>\r\nSubject: bare LF\r\n\r\n"
                            b"line one\r\n.starts with a dot\r\n..two dots\r\n"
                            b"last line without newline\r\n"), content
    assert content.count(b"From: ") == 1


def test_mixed_line_ends(m):
    data = b"Subject: mixed\r\n\r\ncrlf\r\nlf\nlone cr\rend\r\n"
    p = sendmail(m, ["-i", "x@example.net"], data)
    assert p.returncode == 0, p.stderr
    _, content = only(m)
    assert content.endswith(b"\r\n\r\ncrlf\r\nlf\r\nlone cr\r\nend\r\n"), content
    assert crlf_only(content)


def test_dot_line_ends_input_without_i(m):
    data = "Subject: dot\n\nbefore\n.\nafter\n"
    assert sendmail(m, ["x@example.net"], data).returncode == 0
    _, content = only(m)
    assert content.endswith(b"\r\n\r\nbefore\r\n"), content
    assert b"after" not in content


def test_dot_line_kept_with_i(m):
    data = "Subject: dot\n\nbefore\n.\nafter\n"
    for flag in ("-i", "-oi"):
        assert sendmail(m, [flag, "x@example.net"], data).returncode == 0
    for _, content in queued(m).values():
        assert content.endswith(b"\r\n\r\nbefore\r\n.\r\nafter\r\n"), content


def test_t_takes_recipients_and_removes_bcc(m):
    data = ("From: sender@example.org\n"
            "To: \"Doe, John\" <john@example.net>, jane@example.net (Jane)\n"
            "Cc: team: x@example.com, y@example.com;,\n"
            "  folded@example.com\n"
            "Bcc: hidden@example.org\n"
            "Subject: -t\n\nbody\n")
    p = sendmail(m, ["-t", "extra@example.net"], data)
    assert p.returncode == 0, p.stderr
    env, content = only(m)
    assert sorted(rcpts(env)) == sorted(["extra@example.net", "john@example.net",
                                         "jane@example.net", "x@example.com", "y@example.com",
                                         "folded@example.com", "hidden@example.org"])
    assert b"Bcc:" not in content and b"hidden@" not in content
    assert b"\r\nCc: team: x@example.com, y@example.com;,\r\n  folded@example.com\r\n" in content
    assert crlf_only(content)


def test_t_without_recipients(m):
    p = sendmail(m, ["-t"], "Subject: nobody\n\nbody\n")
    assert p.returncode == EX_DATAERR
    assert b"no recipient" in p.stderr
    p = sendmail(m, [], "Subject: nobody\n\nbody\n")
    assert p.returncode == EX_USAGE
    assert queued_ids(m) == []


def test_php_mail_style(m):
    # PHP's mail() runs "sendmail -t -i" and writes To:, Subject: and its
    # additional headers, with LF line ends on Unix.
    data = ("To: customer@example.net\nSubject: Your order\n"
            "From: shop@example.org\nReply-To: support@example.org\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\n"
            "Thank you.\n.\nRegards\n")
    p = sendmail(m, ["-t", "-i"], data)
    assert p.returncode == 0, p.stderr
    env, content = only(m)
    assert env["sender"] == "root@mx.test.example"
    assert rcpts(env) == ["customer@example.net"]
    assert content.count(b"From: ") == 1 and b"\r\nFrom: shop@example.org\r\n" in content
    assert content.endswith(b"\r\n\r\nThank you.\r\n.\r\nRegards\r\n")
    assert crlf_only(content)


def test_cron_style(m):
    # Debian's cron: sendmail -FCronDaemon -i -odi -oem -oi -t, with From:
    # only when MAILFROM is set; unknown -o options are ignored quietly.
    data = ("To: root\nSubject: Cron <root@host> /usr/local/bin/job\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
            "X-Cron-Env: <SHELL=/bin/sh>\n\njob output\n")
    p = sendmail(m, ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t"], data)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    env, content = only(m)
    assert env["sender"] == "root@mx.test.example"
    assert rcpts(env) == ["root@mx.test.example"]
    assert b"\r\nFrom: CronDaemon <root@mx.test.example>\r\n" in content
    assert b"\r\nTo: root\r\n" in content
    assert content.endswith(b"\r\n\r\njob output\r\n")


def test_full_name_quoting_and_null_sender(m):
    assert sendmail(m, ["-F", "Ops, Team", "-f", "<>", "a@example.net"],
                    "Subject: q\n\nx\n").returncode == 0
    assert sendmail(m, ["-F", "Jörg Müller", "-f", "ops@example.org", "b@example.net"],
                    "Subject: u\n\nx\n").returncode == 0
    got = {rcpts(e)[0]: (e, c) for e, c in queued(m).values()}
    env, content = got["a@example.net"]
    assert env["sender"] == ""
    assert b'\r\nFrom: "Ops, Team" <MAILER-DAEMON>\r\n' in content
    env, content = got["b@example.net"]
    assert b"\r\nFrom: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <ops@example.org>\r\n" in content


def test_mbox_from_line_and_missing_separator(m):
    data = "From someone@example.org Mon Jan  1 00:00:00 2024\nSubject: s\nthis is body\n"
    assert sendmail(m, ["x@example.net"], data).returncode == 0
    _, content = only(m)
    assert b"From someone" not in content
    assert content.endswith(b"\r\nSubject: s\r\n\r\nthis is body\r\n"), content


def test_bs(m):
    script = ("EHLO client.example\nMAIL FROM:<bs@example.org>\nRCPT TO:<to@example.net>\n"
              "DATA\nSubject: via -bs\n\nline\n..dot\n.\nQUIT\n")
    p = sendmail(m, ["-bs"], script)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().split("\r\n")
    assert lines[0].startswith("220 ")
    codes = [ln[:3] for ln in lines if ln[:3].isdigit() and ln[3:4] == " "]
    assert codes == ["220", "250", "250", "250", "354", "250", "221"], p.stdout
    env, content = only(m)
    assert env["sender"] == "bs@example.org" and rcpts(env) == ["to@example.net"]
    assert content.endswith(b"\r\nSubject: via -bs\r\n\r\nline\r\n.dot\r\n"), content


def test_bp_and_q(m):
    assert sendmail(m, ["x@example.net"], "Subject: s\n\nx\n").returncode == 0
    wait_until(lambda: "(" in ctl(m, "queue").decode(), 20, what="a deferred message")
    p = sendmail(m, ["-bp"], b"")
    assert p.returncode == 0
    assert p.stdout == ctl(m, "queue")
    p = sendmail(m, ["-q"], b"")
    assert p.returncode == 0 and b"retried" in p.stdout


def test_no_daemon(mtad_factory):
    m = mtad_factory(conf=DEFER, start=False)
    p = sendmail(m, ["x@example.net"], "Subject: s\n\nx\n")
    assert p.returncode == EX_TEMPFAIL
    assert b"cannot connect to mtad" in p.stderr
    p = sendmail(m, ["-bs"], "QUIT\n")
    assert p.returncode == EX_TEMPFAIL and p.stdout.startswith(b"421 ")


def test_refusals(mtad_factory, tmp_path):
    m = mtad_factory(conf=dict(DEFER, smtpd_trusted_networks="192.0.2.0/24",
                               message_size_limit="2000"))
    p = sendmail(m, ["x@example.net"], "Subject: s\n\nx\n")
    assert p.returncode == EX_UNAVAILABLE, p.stderr
    assert b"Relay access denied" in p.stderr
    m.stop()
    m.conf["smtpd_trusted_networks"] = "127.0.0.0/8"
    m.write_conf()
    m.start()
    p = sendmail(m, ["x@example.net"], "Subject: big\n\n" + "x" * 5000 + "\n")
    assert p.returncode == EX_DATAERR, p.stderr
    assert b"552" in p.stderr
    assert queued_ids(m) == []
    p = sendmail(m, ["bad address@example.net"], "Subject: s\n\nx\n")
    assert p.returncode == EX_DATAERR
    bad = tmp_path / "bad.conf"
    bad.write_text("data_dir = /tmp\nbogus = 1\n")
    p = sendmail(m, ["x@example.net"], "Subject: s\n\nx\n", conf=str(bad))
    assert p.returncode == EX_CONFIG and b"Error: failed to pre-configure MTA" in p.stderr
    p = sendmail(m, ["-bd"], b"")
    assert p.returncode == EX_USAGE
    p = sendmail(m, ["-Z"], b"")
    assert p.returncode == EX_USAGE


def _vmhwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_message_streams(mtad_factory):
    """A 40 MB message passes through; sendmail's peak memory stays small."""
    m = mtad_factory(conf=dict(DEFER, message_size_limit="60000000"))
    line = b"0123456789" * 7 + b"\n"
    chunk = line * (1024 * 1024 // len(line))
    chunks = 40
    p = subprocess.Popen([SENDMAIL, "-C", m.conf_path, "x@example.net"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=m.env)
    try:
        p.stdin.write(b"Subject: big\n\n")
        for _ in range(chunks):
            p.stdin.write(chunk)
        p.stdin.flush()
        # still running (stdin open): nearly 40 MB went through it
        peak_kb = _vmhwm_kb(p.pid)
        p.stdin.close()
        assert p.wait(120) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert peak_kb < 16 * 1024, peak_kb
    env = json.loads(ctl(m, "show", queued_ids(m)[0], "--json"))
    # CRLF: one more byte per line, plus mtad's own headers
    assert env["size"] > chunks * (len(chunk) + len(chunk) // len(line))


def test_options_after_recipients(m):
    p = sendmail(m, ["x@example.net", "-oi", "-f", "late@example.org", "-G", "-O", "Foo=bar"],
                 "Subject: late options\n\na\n.\nb\n")
    assert p.returncode == 0, p.stderr
    env, content = only(m)
    assert env["sender"] == "late@example.org" and rcpts(env) == ["x@example.net"]
    assert content.endswith(b"\r\n\r\na\r\n.\r\nb\r\n")
