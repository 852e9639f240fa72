"""Disk guard (SPEC §8) end to end, on a small file system made by the test.

data_dir is a 4 MiB tmpfs mounted by the test (it runs as root); a filler
file written beside the queue takes the free space below 5 % (the warning
shows in /api/stats, /metrics, the log and the dashboard, mail is still
accepted) and then below 1 % (new mail gets 452 4.3.1, nothing queued is
lost, also across a restart); removing the filler clears the warning.
Skipped, with the reason, where mounting is impossible.
"""
import os
import re
import smtplib
import subprocess

import pytest

from conftest import wait_until
from http_helpers import QUEUED_CONF, Api, send_mail, wait_queue_total

WARN5 = "Data volume has less than 5% free disk space"
WARN1 = "Data volume has less than 1% free disk space"
SIZE = 4 * 1024 * 1024


def mount_tmpfs(path):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % SIZE, "tmpfs", path],
                       capture_output=True, text=True, timeout=30)
    return None if p.returncode == 0 else (p.stderr.strip() or "mount failed")


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)


def free_pct(path):
    st = os.statvfs(path)
    return 100.0 * st.f_bavail / st.f_blocks


def fill_to(path, filler, pct):
    """Grow or shrink the filler file so that about pct % stays free."""
    st = os.statvfs(path)
    cur = os.path.getsize(filler) if os.path.exists(filler) else 0
    want_free = int(st.f_blocks * pct / 100.0) * st.f_frsize
    have_free = st.f_bavail * st.f_frsize
    size = max(0, cur + have_free - want_free)
    with open(filler, "ab") as f:
        f.truncate(0)
    with open(filler, "wb") as f:
        # tmpfs has no holes to cheat with: write real bytes.
        chunk = b"\0" * 65536
        left = size
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
    return free_pct(path)


def metric(api, name):
    text = api.get("/metrics").body.decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


@pytest.fixture
def small_disk(mtad_factory):
    m = mtad_factory(conf=dict(QUEUED_CONF), start=False)
    why = mount_tmpfs(m.data_dir)
    if why:
        pytest.skip("cannot mount a tmpfs for data_dir here: " + why)
    # mtad checks the space as mail_owner ("nobody") by path: the directories
    # above data_dir must be searchable (pytest makes them 0700).
    p = os.path.dirname(m.data_dir)
    while p not in ("/", "/tmp"):
        os.chmod(p, os.stat(p).st_mode | 0o011)
        p = os.path.dirname(p)
    try:
        yield m, os.path.join(m.data_dir, "zz-filler")
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.stop()
        umount(m.data_dir)


def test_disk_guard(small_disk):
    m, filler = small_disk
    m.start()
    api = Api(m)
    send_mail(m, sender="early@example.com", subject="queued before the disk filled")
    early = wait_queue_total(api, 1)["items"][0]["id"]
    s = api.json("/api/stats")
    assert s["disk"]["level"] == 0 and s["disk"]["message"] is None
    assert api.get("/readyz").status == 200
    assert s["disk"]["total_bytes"] <= SIZE

    # Below 5 %: warning everywhere, mail still accepted.
    pct = fill_to(m.data_dir, filler, 3.0)
    assert 1.0 < pct < 5.0, pct
    wait_until(lambda: api.json("/api/stats")["disk"]["level"] == 1, 10, what="disk warning")
    d = api.json("/api/stats")["disk"]
    assert d["state"] == "low" and d["message"] == WARN5
    assert 1.0 < d["free_percent"] < 5.0
    assert metric(api, "mta_disk_state") == 1
    assert 0.01 < metric(api, "mta_disk_free_ratio") < 0.05
    wait_until(lambda: WARN5 in m.read_stderr(), 10, what="the warning in the log")
    send_mail(m, sender="warned@example.com")
    wait_queue_total(api, 2)
    assert api.get("/readyz").status == 200           # still accepting mail
    banner = dashboard_banner(m, "disk-banner-5.png")
    if banner is not None:
        assert banner == WARN5

    # Below 1 %: new mail gets 452 4.3.1, nothing queued is lost.
    pct = fill_to(m.data_dir, filler, 0.4)
    assert pct < 1.0, pct
    wait_until(lambda: api.json("/api/stats")["disk"]["level"] == 2, 10, what="disk critical")
    assert api.json("/api/stats")["disk"]["message"] == WARN1
    assert metric(api, "mta_disk_state") == 2
    wait_until(lambda: WARN1 in m.read_stderr(), 10, what="the critical warning in the log")

    def refused():
        try:
            send_mail(m, sender="late@example.com")
            return False
        except smtplib.SMTPSenderRefused as e:
            assert e.smtp_code == 452, e
            assert b"4.3.1" in e.smtp_error and b"Insufficient system storage" in e.smtp_error
            return True
    wait_until(refused, 15, interval=0.5, what="452 4.3.1")
    # SPEC §11.4: not ready while mail is refused for lack of disk.
    r = api.get("/readyz")
    assert r.status == 503 and b"less than 1% free disk space" in r.body, r
    banner = dashboard_banner(m, "disk-banner-1.png")
    if banner is not None:
        assert banner.startswith(WARN1) and "new mail is being refused" in banner, banner
    ids = [x["id"] for x in api.json("/api/queue")["items"]]
    assert early in ids
    queued = set(ids)

    # A restart on the full disk loses nothing.
    assert m.stop() == 0
    m.start()
    api = Api(m)
    assert set(x["id"] for x in api.json("/api/queue")["items"]) == queued
    d = api.json("/api/queue/" + early)
    assert d["subject"] == "queued before the disk filled"

    # Space again: the warning goes, mail is accepted.
    os.unlink(filler)
    wait_until(lambda: api.json("/api/stats")["disk"]["level"] == 0, 10, what="warning cleared")
    assert metric(api, "mta_disk_state") == 0
    assert api.get("/readyz").status == 200

    def accepted():
        try:
            send_mail(m, sender="after@example.com")
            return True
        except smtplib.SMTPSenderRefused:
            return False
    wait_until(accepted, 15, interval=0.5, what="mail accepted again")


def test_size_that_would_not_fit_is_refused_at_mail(small_disk):
    """SPEC §8 with the declared size: a MAIL whose SIZE would take the
    free space below the 1 % reserve gets 452 4.3.1 at once (not a 451 after
    the whole body), and the log says why; a SIZE that fits is accepted."""
    m, filler = small_disk
    m.start()
    pct = fill_to(m.data_dir, filler, 3.0)
    assert 2.0 < pct < 5.0, pct
    st = os.statvfs(m.data_dir)
    room = st.f_bavail * st.f_frsize - st.f_blocks * st.f_frsize // 100
    assert 50000 < room < 150000, room
    with smtplib.SMTP("127.0.0.1", m.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        code, text = s.mail("big@example.com", ["SIZE=%d" % (room + 20000)])
        assert (code, text) == (452, b"4.3.1 Insufficient system storage"), (code, text)
        code, _ = s.mail("small@example.com", ["SIZE=%d" % (room // 4)])
        assert code == 250
        s.rset()
        code, _ = s.mail("nosize@example.com")
        assert code == 250                   # 3 % free: still above the reserve
    want = ("warning: Data volume has too little free space for a message of %d bytes "
            "from unknown[127.0.0.1]" % (room + 20000))
    wait_until(lambda: want in m.maillog(), 10, what="the size warning in the mail log")
    wait_until(lambda: "NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 452 4.3.1 "
               "Insufficient system storage; from=<big@example.com>" in m.maillog(), 10,
               what="the reject line")
    assert "MAIL SIZE=%d refused" % (room + 20000) in m.read_stderr()


def test_production_daemon_ignores_the_test_variable(small_disk):
    """MTAD_TEST_DISK_FREE_PCT no longer replaces the real measurement."""
    m, filler = small_disk
    m.env["MTAD_TEST_DISK_FREE_PCT"] = "0.5"
    m.start()
    send_mail(m, sender="real@example.com")   # the real disk is nearly empty
    assert "MTAD_TEST_DISK_FREE_PCT" not in m.read_stderr()


def dashboard_banner(m, shot):
    """The banner text the dashboard shows, or None when no browser is here."""
    try:
        from test_ui_browser import browser_ready, run_browser
    except ImportError:
        return None
    if browser_ready() is not None:
        return None
    r = run_browser({"mode": "banner", "url": "http://127.0.0.1:%d/" % m.ui_port, "shot": shot})
    return r["banner"]
