"""A big queue at start-up (SPEC §11.5): the listeners accept at once while the
queue is recovered in the background, in id order, with exact counters after.

The queue is made by copying one real queue file (written by mtad itself)
under many older ids: a queue file does not hold its own id.
"""
import os
import shutil
import smtplib
import urllib.request

from conftest import metric, wait_until
from test_delivery import DEADLINE, send, wait_log, world_factory  # noqa: F401  (fixture)

N = 20000


def stopped_with_one_deferred(mtad_factory, world_factory):
    """mtad stopped with one deferred message in queue/: (m, qdir, its file name)."""
    w = world_factory({"dst.test": {"MX": [(10, "mx.dst.test")]},
                       "mx.dst.test": {"A": ["127.0.0.2"]}})
    w.hop(2).tempfail("RCPT", reply="451 4.3.0 Not now")
    m = mtad_factory(w.conf(retry_min_backoff="1h", retry_max_backoff="2h"))
    send(m, "alice@src.test", ["bob@dst.test"], tag="seed")
    wait_log(m, "status=deferred")
    assert m.stop() == 0
    qdir = os.path.join(m.data_dir, "queue")
    (orig,) = os.listdir(qdir)
    return m, qdir, orig


def test_accepts_mail_while_a_big_queue_is_recovered(mtad_factory, world_factory):
    m, qdir, orig = stopped_with_one_deferred(mtad_factory, world_factory)
    key = int(orig, 16)
    for i in range(1, N + 1):
        shutil.copyfile(os.path.join(qdir, orig), os.path.join(qdir, "%016X" % (key - i)))

    m.start()               # returns once SMTP and HTTP listen
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
        code, _ = s.ehlo()
        assert code == 250
        assert s.sendmail("carol@src.test", ["dave@dst.test"], b"Subject: new\r\n\r\nhi\r\n") == {}
    with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % m.ui_port, timeout=10) as r:
        ready = r.status
    err = m.read_stderr()
    assert "the queue is recovered in the background" in err, err
    # The listeners open before the recovery ends: "started" comes first. (Whether the
    # new message also beat the end of the recovery depends on the disk: 20,000 files
    # take a few tenths of a second to read.)
    started = err.index("the queue is recovered in the background")
    assert "queue recovered" not in err[:started], err
    assert ready == 200, "accepting mail: ready while the queue is still being read"

    wait_until(lambda: "queue recovered: " in m.read_stderr(),
               DEADLINE * 4, what="the recovery to finish")
    # every message counted once: the recovered ones and the new one
    wait_until(lambda: metric(m, "mta_queue_messages") == N + 2, DEADLINE,
               what="mta_queue_messages == %d" % (N + 2))


def test_root_owned_queue_files_are_handed_over_in_the_background(mtad_factory, world_factory):
    """After a restore as root (or a crash: no fresh queue.owned), the files of
    queue/ are given to mail_owner by a process of their own: the listeners do
    not wait for the walk, and recovery reads queue/ once it is over."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root")
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    m, qdir, orig = stopped_with_one_deferred(mtad_factory, world_factory)
    assert os.stat(os.path.join(qdir, orig)).st_uid == nobody
    key = int(orig, 16)
    n = 5000
    for i in range(1, n + 1):
        shutil.copyfile(os.path.join(qdir, orig), os.path.join(qdir, "%016X" % (key - i)))
    os.chown(os.path.join(qdir, orig), 0, 0)        # root's now: copied in by root
    # and a marker of root's, newer than queue/, as a root process that closed the
    # queue leaves it: it vouches for nothing (only mail_owner's marker does)
    marker = os.path.join(m.data_dir, "queue.owned")
    with open(marker, "w"):
        pass
    os.chown(marker, 0, 0)
    t = os.stat(qdir).st_mtime + 10
    os.utime(marker, (t, t))

    m.start()
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=10) as s:
        assert s.sendmail("carol@src.test", ["dave@dst.test"], b"Subject: new\r\n\r\nhi\r\n") == {}
    wait_until(lambda: "owners checked in" in m.read_stderr(), DEADLINE,
               what="the walk of queue/ to end")
    err = m.read_stderr()
    assert "checking its files' owner in the background" in err, err
    assert "0 entries left alone" in err, err
    wait_until(lambda: "queue recovered: " in m.read_stderr(), DEADLINE * 4,
               what="the recovery to finish")
    wait_until(lambda: metric(m, "mta_queue_messages") == n + 2, DEADLINE,
               what="mta_queue_messages == %d" % (n + 2))
    owners = {os.stat(os.path.join(qdir, f)).st_uid for f in os.listdir(qdir)}
    assert owners == {nobody}, owners
    # and each is readable by mtad: the oldest one's detail comes from its file
    with urllib.request.urlopen("http://127.0.0.1:%d/api/queue/%016X" % (m.ui_port, key - n),
                                timeout=10) as r:
        assert r.status == 200
