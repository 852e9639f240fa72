"""SPEC §3: a start-up error goes to stderr "and to the log when it can": the
mail log gets a Postfix-style "mtad/master[PID]: fatal: Error: ..." line when
the configuration is known and the log share works; `mtad -t` writes none."""
import re
import socket

FATAL = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mx\.test\.example "
                   r"mtad/master\[\d+\]: fatal: (Error: .*)$", re.M)


def test_listener_error_reaches_the_mail_log(mtad_factory):
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        m = mtad_factory(conf={"smtp_listen": "127.0.0.1:%d" % port}, start=False)
        rc, err = m.start_expect_fail()
        assert rc != 0
        stderr_line = [l for l in err.splitlines() if l.startswith("Error:")][0]
        assert stderr_line.startswith("Error: failed to start MTA server: "), err
        assert FATAL.findall(m.maillog()) == [stderr_line], m.maillog()
    finally:
        blocker.close()


def test_error_before_the_log_was_opened_reaches_it(mtad_factory, tmp_path):
    # the key volume is checked before anything else: the log share works
    m = mtad_factory(conf={"key_dir": str(tmp_path / "missing")}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0 and "Error: failed to load key volume." in err, err
    assert [l.split(" (")[0] for l in FATAL.findall(m.maillog())] == \
        ["Error: failed to load key volume."], m.maillog()


def test_check_mode_writes_no_mail_log_line(mtad_factory, tmp_path):
    m = mtad_factory(conf={"key_dir": str(tmp_path / "missing")}, start=False)
    p = m.run_check()
    assert p.returncode != 0
    assert FATAL.findall(m.maillog()) == []


def test_broken_log_share_is_only_on_stderr(mtad_factory, tmp_path):
    m = mtad_factory(conf={"log_dir": str(tmp_path / "no-share")}, start=False)
    rc, err = m.start_expect_fail()
    assert rc != 0 and "Error: failed to mount log share." in err, err
    assert not (tmp_path / "no-share").exists()      # not created for the error line
