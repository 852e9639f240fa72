"""The man pages render without warnings, say what the code does (every
configuration property, every SPEC §3 start-up error, every mtactl command),
and `make install` puts programs, pages and the unit where they belong.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

PAGES = ["man/mtad.8", "man/mtactl.1", "man/sendmail.1", "man/mtad.conf.5"]


def page(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def rendered(name):
    p = subprocess.run(["groff", "-ww", "-man", "-Tutf8", os.path.join(ROOT, name)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", "%s: groff warnings:\n%s" % (name, p.stderr)
    # groff's utf8 output uses backspace overstriking for bold/underline
    return re.sub(r".\x08", "", p.stdout)


@pytest.mark.parametrize("name", PAGES)
def test_groff_renders_without_warnings(name):
    text = rendered(name)
    assert "NAME" in text and "SYNOPSIS" in text and "SEE ALSO" in text


@pytest.mark.parametrize("name", PAGES)
def test_mandoc_lint(name):
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (.ci/deps.sh installs it)")
    p = subprocess.run(["mandoc", "-T", "lint", os.path.join(ROOT, name)],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout + p.stderr) == (0, ""), p.stdout + p.stderr


@pytest.mark.parametrize("name", PAGES)
def test_man_l(name):
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    p = subprocess.run(["man", "-l", os.path.join(ROOT, name)], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, MANWIDTH="80", MANPAGER="cat",
                                            PAGER="cat", LC_ALL="C.UTF-8",
                                            MAN_KEEP_FORMATTING="0"))
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr
    assert "NAME" in re.sub(r".\x08", "", p.stdout)


def config_properties():
    """Every property name in the configuration parser's table."""
    src = page("src/mail/config.c")
    names = re.findall(r'^\s*\{ "([a-z_]+)", CFG_[A-Z0-9]+,', src, re.M)
    assert len(names) > 30, names
    return names


def test_mtad_conf_documents_every_property():
    text = rendered("man/mtad.conf.5")
    flat = " ".join(text.split())
    for name in config_properties():
        assert re.search(r"\b%s \(" % re.escape(name), flat), "%s is not documented" % name


def test_mtad_conf_documents_defaults():
    flat = " ".join(rendered("man/mtad.conf.5").split())
    src = page("src/mail/config.c")
    for name, default in re.findall(r'^\s*\{ "([a-z_]+)", CFG_[A-Z0-9]+, "([^"]*)"', src, re.M):
        if default == "" or name == "data_dir":
            continue
        assert re.search(r"\b%s \([^)]*default: %s\b" % (re.escape(name), re.escape(default)),
                         flat), "%s: default %s is not documented" % (name, default)


def test_mtad_conf_documents_startup_errors():
    spec = page("../shared/SPEC.md") if os.path.exists(os.path.join(ROOT, "../shared/SPEC.md")) \
        else None
    texts = [
        "Error: failed to load key volume.",
        "Error: failed to mount log share.",
        "Error: logs are enabled, but log terminal is not connected.",
        "Error: failed to pre-configure MTA:",
        "Error: failed to start MTA server:",
        "Error: failed to initialize UI backend:",
        "Error: ui_port value must be between 1 and 65535.",
        "Error: SSL keys could not be found on key volume!",
        "Error: ssl_disabled=no, but key files are not defined!",
    ]
    if spec is not None:
        section = spec.split("## 3.", 1)[1].split("## 4.", 1)[0]
        from_spec = re.findall(r"`(Error: [^`<]*)", section)
        assert len(from_spec) == len(texts)
        texts = [t.strip() for t in from_spec]
    flat = " ".join(rendered("man/mtad.conf.5").split())
    for t in texts:
        assert t in flat, t


def test_mtactl_documents_commands_and_statuses():
    flat = " ".join(rendered("man/mtactl.1").split())
    for cmd in ("queue", "show", "flush", "delete", "hold", "release", "stats", "check-config",
                "mailq", "--json", "--body", "ALL", "search", "qshape", "health", "drain",
                "dkim-record", "--domain", "--sender", "--rcpt", "--state", "--min-age",
                "--max-age", "--search", "FILTERS"):
        assert cmd in flat, cmd
    for status in ("0 Done.", "2 An unknown queue ID", "3 mtad is not running",
                   "4 Permission denied"):
        assert status in flat, status


def test_install(tmp_path):
    for prog in ("mtad", "mtactl", "sendmail"):
        if not os.path.exists(os.path.join(ROOT, "build", prog)):
            pytest.skip("build/%s is not built" % prog)
    dest = tmp_path / "root"
    p = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=%s" % dest,
                        "PREFIX=/usr/local"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    u = dest / "usr/local"
    for f in ("sbin/mtad", "bin/mtactl", "libexec/mtad/sendmail"):
        assert os.access(u / f, os.X_OK), f
    assert os.readlink(u / "bin/mailq") == "mtactl"
    assert not (u / "sbin/sendmail").exists()
    for f in ("share/man/man8/mtad.8", "share/man/man1/mtactl.1", "share/man/man1/sendmail.1",
              "share/man/man5/mtad.conf.5", "share/doc/mtad/README.md"):
        assert (u / f).is_file(), f
    unit = (u / "lib/systemd/system/mtad.service").read_text()
    assert "ExecStart=/usr/local/sbin/mtad -c" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    for opt in ("Type=simple", "Restart=on-failure", "ProtectSystem=strict",
                "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes", "ReadWritePaths="):
        assert opt in unit, opt
    # with INSTALL_SENDMAIL=yes, sbin/sendmail is a link; an existing file is never replaced
    p = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=%s" % dest,
                        "PREFIX=/usr/local", "INSTALL_SENDMAIL=yes"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert os.readlink(u / "sbin/sendmail") == "/usr/local/libexec/mtad/sendmail"
    (u / "sbin/sendmail").unlink()
    (u / "sbin/sendmail").write_text("the system's MTA\n")
    p = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=%s" % dest,
                        "PREFIX=/usr/local", "INSTALL_SENDMAIL=yes"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "refusing" in p.stderr
    assert (u / "sbin/sendmail").read_text() == "the system's MTA\n"
    p = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", "DESTDIR=%s" % dest,
                        "PREFIX=/usr/local"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert not (u / "sbin/mtad").exists() and not (u / "bin/mailq").exists()
    assert (u / "sbin/sendmail").exists()   # not ours: left alone


def test_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = page("etc/mtad.service")
    fake = tmp_path / "mtad"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    path = tmp_path / "mtad.service"
    # point the unit at an executable that exists; drop the man: links (no man db here)
    path.write_text(unit.replace("/usr/local/sbin/mtad", str(fake))
                    .replace("Documentation=", "#Documentation="))
    p = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "mtad.service" not in p.stderr, p.stderr
