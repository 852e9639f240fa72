"""mtactl (and mailq): every command, text and JSON, against a running mtad
(through its HTTP API) and a stopped one (reading data_dir), unknown IDs,
no daemon, permissions and exit statuses.

Mail stays queued because delivery goes to smart_relay [127.0.0.1]:1, where
nothing listens: every attempt fails with "connection refused" and defers.
"""
import json
import os
import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import BIN_DIR, wait_until

MTACTL = os.path.join(BIN_DIR, "mtactl")
DEFER = {"smart_relay": "[127.0.0.1]:1"}
HEADER = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
ROW = re.compile(r"^([0-9A-F]{16})([ !])\s+(\d+) (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d)  (\S+)$")



def queued_ids(m):
    """Queue ids of the message files in data_dir/queue that have content:
    the queue keeps empty spare files there, which are not messages."""
    qdir = os.path.join(m.data_dir, "queue")
    try:
        names = os.listdir(qdir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.getsize(os.path.join(qdir, n)) > 0)

def ctl(m, *args, env=None, conf=None, user=None, timeout=60):
    """Run mtactl -c CONF ARGS; returns CompletedProcess (text)."""
    cmd = [MTACTL, "-c", conf or m.conf_path, *args]
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
    e = dict(m.env)
    if env:
        e.update(env)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout)


def send(m, sender, rcpts, subject="test", body="hello\r\n"):
    msg = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n%s" % (sender, ", ".join(rcpts), subject, body)
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=30) as s:
        s.sendmail(sender, rcpts, msg)


def queue_json(m, **kw):
    p = ctl(m, "queue", "--json", **kw)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def all_deferred(m, n):
    """True once n messages are queued and every one has failed an attempt."""
    q = queue_json(m)
    return len(q) == n and all(x["queue_name"] == "deferred" for x in q)


@pytest.fixture
def queued(mtad_factory):
    """A running mtad with two deferred messages: one with 1, one with 5 recipients."""
    m = mtad_factory(conf=DEFER)
    send(m, "alice@example.org", ["bob@example.net"], subject="one")
    send(m, "carol@example.org", ["r%d@example.net" % i for i in range(5)], subject="two")
    wait_until(lambda: all_deferred(m, 2), 20, what="two deferred messages")
    return m


def parse_mailq(text):
    """mailq text -> (list of {id, held, size, sender, rcpts, reasons}, footer)."""
    lines = text.splitlines()
    assert lines[0] == HEADER, lines[:2]
    msgs, cur = [], None
    for line in lines[1:-1]:
        mo = ROW.match(line)
        if mo:
            cur = {"id": mo.group(1), "held": mo.group(2) == "!", "size": int(mo.group(3)),
                   "sender": mo.group(5), "rcpts": [], "reasons": []}
            msgs.append(cur)
        elif line.strip().startswith("("):
            cur["reasons"].append(line.strip())
        elif line.strip():
            # recipients start in the sender's column
            assert line.startswith(" "), line
            cur["rcpts"].append(line.strip())
    return msgs, lines[-1]


def check_mailq(text, m):
    msgs, footer = parse_mailq(text)
    assert [x["sender"] for x in msgs] == ["alice@example.org", "carol@example.org"]
    assert msgs[0]["rcpts"] == ["bob@example.net"]
    assert msgs[1]["rcpts"] == ["r%d@example.net" % i for i in range(5)]
    for x in msgs:
        assert x["reasons"] and "127.0.0.1" in x["reasons"][0], x
        assert not x["held"]
    total = sum(x["size"] for x in msgs)
    assert footer == "-- %d Kbytes in 2 Requests." % ((total + 1023) // 1024), footer
    assert sorted(x["id"] for x in msgs) == sorted(queued_ids(m))
    return msgs


def check_json(rows, m):
    assert len(rows) == 2
    assert {r["queue_id"] for r in rows} == set(queued_ids(m))
    for r in rows:
        assert set(r) >= {"queue_name", "queue_id", "arrival_time", "message_size",
                          "forced_expire", "sender", "recipients"}
        assert r["queue_name"] == "deferred"
        assert isinstance(r["arrival_time"], int) and r["arrival_time"] > 1500000000
        assert r["message_size"] > 0
        for rc in r["recipients"]:
            assert "refused" in rc["delay_reason"].lower() or "127.0.0.1" in rc["delay_reason"]
    by_sender = {r["sender"]: r for r in rows}
    assert [x["address"] for x in by_sender["carol@example.org"]["recipients"]] == \
        ["r%d@example.net" % i for i in range(5)]


def test_queue_running_then_stopped(queued):
    m = queued
    p = ctl(m, "queue")
    assert p.returncode == 0, p.stderr
    running = check_mailq(p.stdout, m)
    check_json(queue_json(m), m)
    m.stop()
    p2 = ctl(m, "queue")
    assert p2.returncode == 0, p2.stderr
    stopped = check_mailq(p2.stdout, m)
    assert [(x["id"], x["size"], x["rcpts"]) for x in stopped] == \
        [(x["id"], x["size"], x["rcpts"]) for x in running]
    check_json(queue_json(m), m)


def test_mailq_name_and_environment(queued, tmp_path):
    m = queued
    link = tmp_path / "mailq"
    os.symlink(MTACTL, link)
    env = dict(m.env, MTAD_CONFIG=m.conf_path)
    p = subprocess.run([str(link)], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ctl(m, "queue").stdout
    p = subprocess.run([str(link), "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert len(p.stdout.splitlines()) == 2
    p = subprocess.run([MTACTL, "mailq"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith(HEADER)


def test_empty_queue(mtad_factory):
    m = mtad_factory(conf=DEFER)
    p = ctl(m, "queue")
    assert (p.returncode, p.stdout) == (0, "Mail queue is empty\n")
    assert ctl(m, "queue", "--json").stdout == ""
    m.stop()
    p = ctl(m, "queue")
    assert (p.returncode, p.stdout) == (0, "Mail queue is empty\n")


def _first_id(m):
    return sorted(queued_ids(m))[0]


def check_show(m, qid, body_too=True):
    p = ctl(m, "show", qid)
    assert p.returncode == 0, p.stderr
    assert "Queue ID:   %s" % qid in p.stdout
    assert "Sender:     <alice@example.org>" in p.stdout
    assert re.search(r"<bob@example\.net>  deferred, \d+ attempts?", p.stdout), p.stdout
    assert "last reply:" in p.stdout
    assert "Subject: one" in p.stdout
    p = ctl(m, "show", qid.lower(), "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["id"] == qid and j["sender"] == "alice@example.org"
    assert [r["address"] for r in j["recipients"]] == ["bob@example.net"]
    assert j["recipients"][0]["state"] == "deferred"
    assert j["recipients"][0]["attempts"] >= 1
    assert {"name": "Subject", "value": "one"} in j["headers"]
    if body_too:
        p = subprocess.run([MTACTL, "-c", m.conf_path, "show", qid, "--body"], env=m.env,
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        content = p.stdout.split(b"\n\n", 1)[1]
        assert content.startswith(b"Received: ")
        assert b"\r\nSubject: one\r\n\r\nhello\r\n" in content
        assert content.count(b"\n") == content.count(b"\r\n")


def test_show_running_and_stopped(queued):
    m = queued
    qid = _first_id(m)
    check_show(m, qid)
    m.stop()
    check_show(m, qid)


def test_unknown_id(queued):
    m = queued
    for args in (["show", "0123456789ABCDEF"], ["show", "not-an-id"],
                 ["hold", "0123456789ABCDEF"], ["delete", "FFFFFFFFFFFFFFFF"],
                 ["release", "0000000000000001"], ["flush", "0000000000000001"]):
        p = ctl(m, *args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "no such message" in p.stderr
    # a known and an unknown one: the known one is done, the status says 2
    qid = _first_id(m)
    p = ctl(m, "hold", "0123456789ABCDEF", qid)
    assert p.returncode == 2
    assert "%s: placed on hold" % qid in p.stdout
    m.stop()
    p = ctl(m, "show", "0123456789ABCDEF")
    assert p.returncode == 2 and "no such message" in p.stderr


def test_hold_release_delete(queued):
    m = queued
    a, b = sorted(queued_ids(m))
    p = ctl(m, "hold", a)
    assert (p.returncode, p.stdout) == (0, "%s: placed on hold\n" % a)
    assert ctl(m, "hold", a).stdout == "%s: already on hold\n" % a
    msgs, _ = parse_mailq(ctl(m, "queue").stdout)
    assert [x["held"] for x in msgs] == [True, False]
    assert [r["queue_name"] for r in queue_json(m)] == ["hold", "deferred"]
    assert json.loads(ctl(m, "show", a, "--json").stdout)["state"] == "held"
    # a held message is not retried
    p = ctl(m, "flush", a)
    assert p.returncode == 5 and "hold" in p.stderr
    p = ctl(m, "release", a)
    assert (p.returncode, p.stdout) == (0, "%s: released\n" % a)
    assert ctl(m, "release", a).stdout == "%s: not on hold\n" % a
    p = ctl(m, "delete", a)
    assert (p.returncode, p.stdout) == (0, "%s: deleted\n" % a)
    wait_until(lambda: queued_ids(m) == [b], 10, what="the file to go")
    assert [r["queue_id"] for r in queue_json(m)] == [b]
    # held state is on disk: a stopped mtad shows it too
    assert ctl(m, "hold", b).returncode == 0
    m.stop()
    msgs, footer = parse_mailq(ctl(m, "queue").stdout)
    assert [(x["id"], x["held"]) for x in msgs] == [(b, True)]
    assert footer.endswith("in 1 Request.")
    assert queue_json(m)[0]["queue_name"] == "hold"


def test_all(queued):
    m = queued
    p = ctl(m, "hold", "ALL")
    assert (p.returncode, p.stdout) == (0, "mtactl: Placed on hold: 2 messages\n")
    assert [r["queue_name"] for r in queue_json(m)] == ["hold", "hold"]
    p = ctl(m, "release", "ALL")
    assert (p.returncode, p.stdout) == (0, "mtactl: Released from hold: 2 messages\n")
    assert ctl(m, "hold", "ALL", "0123456789ABCDEF").returncode == 1
    p = ctl(m, "delete", "ALL")
    assert (p.returncode, p.stdout) == (0, "mtactl: Deleted: 2 messages\n")
    wait_until(lambda: queued_ids(m) == [], 10, what="an empty queue directory")
    assert ctl(m, "queue").stdout == "Mail queue is empty\n"


def test_flush(queued):
    m = queued
    p = ctl(m, "flush")
    assert p.returncode == 0, p.stderr
    assert "retried now" in p.stdout
    qid = _first_id(m)
    p = ctl(m, "flush", qid)
    assert (p.returncode, p.stdout) == (0, "%s: scheduled for delivery now\n" % qid)
    # the retries fail again and the messages stay queued
    wait_until(lambda: all_deferred(m, 2), 20, what="deferred again")


def test_stats(queued):
    m = queued
    p = ctl(m, "stats")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^Mqueue-Messages:\s+2$", p.stdout, re.M), p.stdout
    assert re.search(r"^queue recipients:\s+6$", p.stdout, re.M)
    assert re.search(r"^queue deferred:\s+2$", p.stdout, re.M)
    assert re.search(r"^accepted:\s+2$", p.stdout, re.M)
    assert "Active SMTP sessions:" in p.stdout
    j = json.loads(ctl(m, "stats", "--json").stdout)
    assert j["running"] is True
    assert (j["queue"]["messages"], j["queue"]["recipients"]) == (2, 6)
    assert j["totals"]["accepted"] == 2
    kb = j["queue"]["kilobytes"]
    assert ctl(m, "hold", _first_id(m)).returncode == 0
    m.stop()
    p = ctl(m, "stats")
    assert p.returncode == 0, p.stderr
    assert "not running" in p.stdout
    assert re.search(r"^Mqueue-Messages:\s+2$", p.stdout, re.M)
    j = json.loads(ctl(m, "stats", "--json").stdout)
    assert j["running"] is False
    assert j["queue"]["messages"] == 2 and j["queue"]["kilobytes"] == kb
    assert (j["queue"]["held"], j["queue"]["deferred"], j["queue"]["recipients"]) == (1, 1, 6)


def test_no_daemon(mtad_factory):
    m = mtad_factory(conf=DEFER, start=False)
    for args in (["flush"], ["hold", "ALL"], ["delete", "0123456789ABCDEF"],
                 ["release", "0123456789ABCDEF"], ["flush", "0123456789ABCDEF"]):
        p = ctl(m, *args)
        assert p.returncode == 3, (args, p.returncode, p.stdout, p.stderr)
        assert "not running" in p.stderr
    # read-only commands work without the daemon (and without a data_dir yet)
    assert ctl(m, "queue").stdout == "Mail queue is empty\n"
    assert json.loads(ctl(m, "stats", "--json").stdout)["queue"]["messages"] == 0


def test_check_config(mtad_factory, tmp_path):
    m = mtad_factory(conf=DEFER, start=False)
    p = ctl(m, "check-config")
    assert (p.returncode, p.stdout) == (0, "%s: configuration OK\n" % m.conf_path)
    bad = tmp_path / "bad.conf"
    bad.write_text(open(m.conf_path).read() + "no_such_property = 1\n")
    p = ctl(m, "check-config", conf=str(bad))
    assert p.returncode == 1
    assert p.stderr.startswith("mtactl: Error: failed to pre-configure MTA: ")
    assert "no_such_property" in p.stderr
    # the same checks as mtad -t, including the file-system ones
    logs = tmp_path / "nologs.conf"
    logs.write_text(open(m.conf_path).read().replace(m.log_dir, str(tmp_path / "missing")))
    p = ctl(m, "check-config", conf=str(logs))
    assert p.returncode == 1 and "Error: failed to mount log share." in p.stderr
    p = ctl(m, "check-config", conf=str(tmp_path / "absent.conf"))
    assert p.returncode == 1 and "No such file" in p.stderr
    p = ctl(m, "check-config", env={"MTA_UI_PORT": "0"})
    assert p.returncode == 1 and "Error: ui_port value must be between 1 and 65535." in p.stderr


def test_usage(mtad_factory):
    m = mtad_factory(conf=DEFER, start=False)
    for args in ([], ["frobnicate"], ["show"], ["delete"], ["queue", "extra"], ["--bogus", "queue"]):
        p = ctl(m, *args)
        assert p.returncode == 1, (args, p.returncode)
        assert p.stderr, args
    assert ctl(m, "--help").returncode == 0


def test_api_credentials(mtad_factory, tmp_path):
    m = mtad_factory(conf=dict(DEFER, username="admin", password="s3cret # pw"))
    send(m, "alice@example.org", ["bob@example.net"])
    wait_until(lambda: all_deferred(m, 1), 20, what="a deferred message")
    assert ctl(m, "hold", "ALL").returncode == 0
    wrong = tmp_path / "wrong.conf"
    wrong.write_text(open(m.conf_path).read().replace("s3cret # pw", "wrong"))
    p = ctl(m, "queue", conf=str(wrong))
    assert p.returncode == 4, (p.returncode, p.stderr)
    assert "username and password" in p.stderr
    assert ctl(m, "release", "ALL", conf=str(wrong)).returncode == 4


def test_permissions(mtad_factory, tmp_path):
    m = mtad_factory(conf=DEFER)
    send(m, "alice@example.org", ["bob@example.net"])
    wait_until(lambda: all_deferred(m, 1), 20, what="a deferred message")
    m.stop()
    os.chmod(m.conf_path, 0o600)
    p = ctl(m, "queue", user=65534)
    assert p.returncode == 4 and "Permission denied" in p.stderr, (p.returncode, p.stderr)
    # a readable configuration, but data_dir belongs to root now
    conf = tmp_path / "public.conf"
    shutil.copy(m.conf_path, conf)
    os.chmod(conf, 0o644)
    os.chown(m.data_dir, 0, 0)
    os.chmod(m.data_dir, 0o700)
    for args in (["queue"], ["stats"], ["show", queued_ids(m)[0]]):
        p = ctl(m, *args, conf=str(conf), user=65534)
        assert p.returncode == 4, (args, p.returncode, p.stderr)
        assert "Permission denied" in p.stderr
    assert ctl(m, "queue", conf=str(conf)).returncode == 0


def test_queue_many_pages(mtad_factory):
    """More messages than one API page, committed by parallel sessions (so
    commit order is not id order): each is listed once, running or stopped."""
    import threading
    m = mtad_factory(conf=DEFER)
    errors = []

    def worker(k):
        try:
            with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=60) as s:
                for i in range(110):
                    s.sendmail("w%d@example.org" % k, ["r%d@example.net" % i], "Subject: %d\r\n\r\nx\r\n" % i)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    files = sorted(queued_ids(m))
    assert len(files) == 660
    ids = [r["queue_id"] for r in queue_json(m)]
    assert sorted(ids) == files
    msgs, footer = parse_mailq(ctl(m, "queue").stdout)
    assert sorted(x["id"] for x in msgs) == files
    assert footer.endswith("in 660 Requests.")
    m.stop()
    assert sorted(r["queue_id"] for r in queue_json(m)) == files


def test_qshape(mtad_factory):
    """mtactl qshape and /api/qshape: pending recipients by domain and age."""
    m = mtad_factory(DEFER)
    send(m, "a@src.test", ["x@Big.Test", "y@big.test"])
    send(m, "a@src.test", ["z@big.test", "w@small.test"])
    wait_until(lambda: len(queued_ids(m)) == 2, 10, what="two queued")
    p = ctl(m, "qshape", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["buckets"] == [5, 10, 20, 40, 80, 160, 320, 640, 1280, None]
    assert j["total"] == {"count": 4, "ages": [4, 0, 0, 0, 0, 0, 0, 0, 0, 0]}
    assert [(d["domain"], d["count"]) for d in j["domains"]] == [("big.test", 3),
                                                                  ("small.test", 1)]
    assert j["ndomains"] == 2
    p = ctl(m, "qshape")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["T", "5", "10", "20", "40", "80", "160", "320", "640",
                                "1280", "more"]
    assert lines[1].split() == ["TOTAL", "4", "4"] + ["0"] * 9
    assert lines[2].split()[:3] == ["big.test", "3", "3"]
    assert lines[3].split()[:2] == ["small.test", "1"]
