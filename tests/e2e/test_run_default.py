"""`make run` (etc/run-default.sh): what it prints is what var/mtad.conf
really says, and the mtactl command it prints works against that mtad."""
import os
import shutil
import signal
import subprocess

from conftest import ROOT, MTAD_BIN, BIN_DIR, free_port, port_open, wait_until


def test_run_default_prints_the_configured_ports_and_a_working_mtactl(tmp_path):
    # a copy of the project layout: etc/run-default.sh, build/ (the binaries), var/
    os.chmod(str(tmp_path), 0o755)
    (tmp_path / "etc").mkdir()
    shutil.copy(os.path.join(ROOT, "etc", "run-default.sh"), str(tmp_path / "etc"))
    (tmp_path / "build").mkdir()
    os.symlink(MTAD_BIN, str(tmp_path / "build" / "mtad"))
    os.symlink(os.path.join(BIN_DIR, "mtactl"), str(tmp_path / "build" / "mtactl"))
    smtp, ui = free_port(), free_port()
    (tmp_path / "var" / "data").mkdir(parents=True)
    (tmp_path / "var" / "log").mkdir()
    (tmp_path / "var" / "mtad.conf").write_text(
        "data_dir = %s/var/data\nlog_dir = %s/var/log\nlogs_enabled = yes\n"
        "maillog_filename = maillog\nsmtp_listen = 127.0.0.1:%d\nui_address = 127.0.0.1\n"
        "ui_port = %d\nhostname = mx.test.example\ndns_servers = 127.0.0.1:1\n"
        % (tmp_path, tmp_path, smtp, ui))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTA_") and k != "MTAD_CONFIG"}
    with open(str(out), "wb") as f:
        p = subprocess.Popen(["sh", str(tmp_path / "etc" / "run-default.sh")], stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        wait_until(lambda: p.poll() is not None or
                   (port_open("127.0.0.1", smtp) and port_open("127.0.0.1", ui)), 20,
                   what="mtad from run-default.sh")
        assert p.poll() is None, out.read_text()
        text = out.read_text()
        assert "SMTP on 127.0.0.1:%d, UI on http://127.0.0.1:%d/" % (smtp, ui) in text, text
        assert "2525" not in text and "8080" not in text, text
        assert "mail log in %s/var/log/maillog" % tmp_path in text, text
        # an old var/mtad.conf without mail_owner gets one (root), as before
        assert "mail_owner = nobody" in (tmp_path / "var" / "mtad.conf").read_text()
        # the printed command, run from the project folder, works
        assert "build/mtactl -c var/mtad.conf queue" in text, text
        q = subprocess.run(["build/mtactl", "-c", "var/mtad.conf", "queue"], cwd=str(tmp_path),
                           env=env, capture_output=True, text=True, timeout=30)
        assert q.returncode == 0, q.stderr
        assert "Mail queue is empty" in q.stdout, q.stdout
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
