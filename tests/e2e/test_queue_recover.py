"""Queue recovery at start-up (docs/queue.md): only regular files under
data_dir/queue are queue files. A FIFO, a device or a link that happens to
carry a queue id's name is logged and left alone, never opened in a way
that blocks (the daemon would hang before its loop runs, deaf to SIGTERM)."""
import os
import signal
import subprocess

from conftest import BIN_DIR, wait_until

MTACTL = os.path.join(BIN_DIR, "mtactl")
FIFO_ID = "0000000000000001"
LINK_ID = "0000000000000002"


def plant(m, tmp_path):
    """A FIFO and a symbolic link named like queue ids in data_dir/queue."""
    qdir = os.path.join(m.data_dir, "queue")
    os.makedirs(qdir, exist_ok=True)
    os.mkfifo(os.path.join(qdir, FIFO_ID))
    target = tmp_path / "outside"
    target.write_bytes(b"not a queue file\n")
    os.symlink(str(target), os.path.join(qdir, LINK_ID))
    return qdir


def test_fifo_and_link_named_like_queue_ids_are_skipped(mtad_factory, tmp_path):
    m = mtad_factory(start=False)
    qdir = plant(m, tmp_path)
    m.start()               # listening: recovery did not block
    wait_until(lambda: "queue recovered" in m.read_stderr(), 10, what="recovery finished")
    err = m.read_stderr()
    assert "queue/%s: not a regular file; ignoring it" % FIFO_ID in err, err
    assert "queue/%s: not a regular file; ignoring it" % LINK_ID in err, err
    # left where they are, not quarantined or followed
    assert os.path.exists(os.path.join(qdir, FIFO_ID))
    assert os.path.islink(os.path.join(qdir, LINK_ID))
    assert (tmp_path / "outside").read_bytes() == b"not a queue file\n"
    assert m.stop(signal.SIGTERM, timeout=20) == 0


def test_mtactl_reading_data_dir_skips_a_fifo(mtad_factory, tmp_path):
    m = mtad_factory(start=False)
    plant(m, tmp_path)
    # mtad is not running: mtactl reads data_dir itself
    p = subprocess.run([MTACTL, "-c", m.conf_path, "queue"], env=m.env,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert "queue/%s: not a regular file; skipped" % FIFO_ID in p.stderr, p.stderr
    p = subprocess.run([MTACTL, "-c", m.conf_path, "show", FIFO_ID], env=m.env,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and "not a regular file" in p.stderr, p.stderr
