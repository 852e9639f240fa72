"""Privileges when started as root (SPEC §10, docs/operations.md): the user
mtad becomes, what the key-store reader keeps, and the chown of data_dir and
the mail log, which must not be fooled by what mail_owner placed there."""
import os
import pwd
import signal

import pytest

from conftest import wait_until
from tls_fixture import tls_mtad

PRECONF = "Error: failed to pre-configure MTA: "
CAP_DAC_READ_SEARCH = 1 << 2

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def nobody():
    return pwd.getpwnam("nobody")


# ---- mail_owner ------------------------------------------------------------

def _no_user(name):
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        return True


@pytest.mark.parametrize("owner", [None, "mtadnosuchuser"])
def test_missing_mail_owner_refuses_to_start(mtad_factory, owner):
    name = owner or "mtad"
    if not _no_user(name):
        pytest.skip("user %s exists here" % name)
    m = mtad_factory(conf={"mail_owner": owner}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0, err
    assert PRECONF + "mail_owner: no such user '%s'" % name in err, err
    assert "mail_owner = nobody" in err, err       # says how to get on
    p = m.run_check()
    assert p.returncode != 0 and "no such user '%s'" % name in p.stderr, p.stderr


def test_root_as_mail_owner_refused(mtad_factory):
    m = mtad_factory(conf={"mail_owner": "root"}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0 and PRECONF + "mail_owner: 'root' has uid 0" in err, err


def test_explicit_nobody_runs_as_nobody(mtad_factory):
    m = mtad_factory()          # the harness says mail_owner = nobody
    wait_until(lambda: "running as nobody" in m.read_stderr(), 10, what="running as nobody")
    with open("/proc/%d/status" % m.proc.pid) as f:
        uid = [l for l in f if l.startswith("Uid:")][0].split()[1:]
    assert uid == [str(nobody().pw_uid)] * 4


# ---- the key-store reader ----------------------------------------------------

def _status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def _key_reader(m):
    """The pid of mtad's key-store reader child (comm mtad-keys)."""
    def find():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                st = _status(int(pid))
            except OSError:
                continue
            if st.get("Name") == "mtad-keys" and st.get("PPid") == str(m.proc.pid):
                return int(pid)
        return None
    return wait_until(find, 10, what="the key-store reader process")


def test_key_reader_keeps_only_read_access(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    pid = _key_reader(m)
    st = _status(pid)
    assert st["Uid"].split() == [str(nobody().pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(nobody().pw_gid)] * 4, st["Gid"]
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(st[field], 16) == CAP_DAC_READ_SEARCH, "%s = %s" % (field, st[field])
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"].strip() == "1"
    assert st["Groups"].strip() == ""
    assert sorted(int(fd) for fd in os.listdir("/proc/%d/fd" % pid)) == [0, 1, 2, 3]
    # and it still reads the root-only key on SIGHUP (mtad itself runs as nobody)
    assert oct(os.stat(os.path.join(m.key_dir, "server.key")).st_mode & 0o777) == "0o600"
    before = len(m.read_stderr())
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in m.read_stderr()[before:], 10,
               what="reload")
    assert "key and certificate reloaded" in m.read_stderr()[before:], m.read_stderr()


def test_key_symlink_inside_the_store_works(mtad_factory, tmp_path):
    # Kubernetes secret volumes: name -> ..data/name, all inside the store
    m = tls_mtad(mtad_factory, tmp_path, start=False)
    data = os.path.join(m.key_dir, "..data")
    os.mkdir(data)
    for n in ("server.key", "server.pem"):
        os.rename(os.path.join(m.key_dir, n), os.path.join(data, n))
        os.symlink(os.path.join("..data", n), os.path.join(m.key_dir, n))
    m.start()
    wait_until(lambda: "TLS: STARTTLS and SMTPS" in m.read_stderr(), 10, what="TLS on")


@pytest.mark.parametrize("how", ["dotdot", "relative-link", "absolute-link"])
def test_key_outside_the_store_refused_at_start(mtad_factory, tmp_path, how):
    m = tls_mtad(mtad_factory, tmp_path, start=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(os.path.join(m.key_dir, "server.key"), str(outside / "server.key"))
    if how == "dotdot":
        m.conf["ssl_key_file"] = "../outside/server.key"
        m.write_conf()
        want = "'..' leaves the key store"
    else:
        target = "../outside/server.key" if how == "relative-link" else str(outside / "server.key")
        os.symlink(target, os.path.join(m.key_dir, "server.key"))
        want = "the file is outside the key store"
    rc, err = m.start_expect_fail()
    assert rc != 0, err
    assert "Error: SSL keys could not be found on key volume!" in err and want in err, err


def test_key_link_out_of_the_store_refused_on_reload(mtad_factory, tmp_path):
    m = tls_mtad(mtad_factory, tmp_path)
    _key_reader(m)
    outside = tmp_path / "outside"
    outside.mkdir()
    key = os.path.join(m.key_dir, "server.key")
    os.rename(key, str(outside / "server.key"))
    os.symlink(str(outside / "server.key"), key)
    before = len(m.read_stderr())
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload failed, keeping the running configuration" in
               m.read_stderr()[before:], 10, what="reload refused")
    err = m.read_stderr()[before:]
    assert "server.key: the file is outside the key store" in err, err


# ---- chown of data_dir and the mail log ---------------------------------------

def _root_file(path, text="root's\n"):
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, 0, 0)
    os.chmod(path, 0o644)
    return path


def test_chown_of_data_dir_leaves_planted_links_alone(mtad_factory, tmp_path):
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    via_symlink = _root_file(str(outside / "symlinked"))
    via_hardlink = _root_file(str(outside / "hardlinked"))
    in_dir = _root_file(str(outside / "dir" / "file"))
    m = mtad_factory(start=False)
    os.makedirs(m.data_dir)
    os.symlink(via_symlink, os.path.join(m.data_dir, "evil-symlink"))
    os.link(via_hardlink, os.path.join(m.data_dir, "evil-hardlink"))
    os.symlink(str(outside / "dir"), os.path.join(m.data_dir, "evil-dir"))
    os.mkfifo(os.path.join(m.data_dir, "evil-fifo"))
    m.start()
    wait_until(lambda: "running as nobody" in m.read_stderr(), 10, what="privileges dropped")
    for p in (via_symlink, via_hardlink, in_dir, str(outside / "dir")):
        assert os.stat(p).st_uid == 0, "%s was given away" % p
    # what is really mtad's is mail_owner's
    assert os.stat(os.path.join(m.data_dir, "queue")).st_uid == nobody().pw_uid
    assert os.stat(m.data_dir).st_uid == nobody().pw_uid
    err = m.read_stderr()
    assert "evil-hardlink: has 2 hard links; left alone" in err, err


def test_chown_of_the_mail_log_does_not_follow_a_planted_link(mtad_factory, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = _root_file(str(outside / "maillog"), "")
    m = mtad_factory(conf={"maillog_filename": "sub/maillog"}, start=False)
    # mail_owner owned log_dir/sub after an earlier run, and made it a link
    os.symlink(str(outside), os.path.join(m.log_dir, "sub"))
    m.start()
    wait_until(lambda: "running as nobody" in m.read_stderr(), 10, what="privileges dropped")
    assert os.stat(target).st_uid == 0, "the file behind the link was given away"
    assert os.stat(str(outside)).st_uid == 0
