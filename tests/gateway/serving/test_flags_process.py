"""--chdir, --pythonpath/--app-dir, --env-file, --pid, --umask, --user/--group (real processes)."""

from __future__ import annotations

import os
import pwd
import stat
import sys
from pathlib import Path

import pytest
import requests

from tests.gateway.gateway_helpers import ROOT, Gateway, poll, run_cli
from thor_gateway.serving.config import ConfigError
from thor_gateway.serving.process_setup import parse_env_file

APPS = "tests.gateway.serving.flags_apps"

DEPLOYED_APP = """
import os, sys

def app(environ, start_response):
    body = repr((os.getcwd(), os.environ.get("GREETING"), os.environ.get("KEPT"))).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def start(*args: str, env: dict[str, str] | None = None) -> Gateway:
    gateway = Gateway(*args, env=env)
    try:
        gateway.wait_ready()
    except BaseException:
        gateway.close()
        raise
    return gateway


def deployment(tmp_path: Path) -> Path:
    """site/src/deployed.py and site/.env: an app that lives outside the working directory."""
    site = tmp_path / "site"
    (site / "src").mkdir(parents=True)
    (site / "src" / "deployed.py").write_text(DEPLOYED_APP)
    (site / ".env").write_text(
        "# settings of the deployment\nexport GREETING='hello there'\nKEPT=\"from the file\"\n"
    )
    return site


@pytest.mark.parametrize("path_flag", ["--pythonpath", "--app-dir"])
def test_chdir_pythonpath_and_env_file_before_the_app_is_imported(
    tmp_path: Path, path_flag: str
) -> None:
    site = deployment(tmp_path)
    gateway = start(
        "deployed:app",
        "-b",
        "127.0.0.1:0",
        "--chdir",
        str(site),
        path_flag,
        "src",  # relative: taken from the new directory
        "--env-file",
        ".env",
        env={"KEPT": "from the environment", "PYTHONPATH": str(ROOT)},
    )
    try:
        answer = requests.get(gateway.url + "/", timeout=10).text
        # The variable already set wins over the file's.
        assert answer == repr((str(site), "hello there", "from the environment"))
        assert gateway.stop() == 0
    finally:
        gateway.close()


def test_check_config_applies_them_too(tmp_path: Path) -> None:
    site = deployment(tmp_path)
    args = ("deployed:app", "--chdir", str(site), "--pythonpath", "src", "--check-config")
    result = run_cli(*args, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    result = run_cli("deployed:app", "--chdir", str(site), "--check-config")
    assert result.returncode == 2
    assert "no module named 'deployed'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chdir", "/no/such/dir"], "--chdir: No such file or directory"),
        (["--env-file", "/no/such/.env"], "--env-file: No such file or directory"),
        (["--umask", "9"], "umask: expected an octal mask like 022, got '9'"),
        (["--user", "no-such-user-here"], "--user: no such user: 'no-such-user-here'"),
        (["--group", "no-such-group-here"], "--group: no such group: 'no-such-group-here'"),
    ],
)
def test_bad_deployment_settings_exit_2(args: list[str], message: str) -> None:
    result = run_cli(f"{APPS}:process", *args, "--check-config")
    assert result.returncode == 2
    assert message in result.stderr


def test_env_file_lines() -> None:
    lines = [
        "# a comment",
        "",
        "PLAIN=value with spaces   # and a comment",
        "export EXPORTED=1",
        "SINGLE='no $expansion \\n here'",
        'DOUBLE="line\\nbreak \\"quoted\\""',
        "EMPTY=",
        "  SPACED = x  ",
    ]
    assert parse_env_file(lines) == {
        "PLAIN": "value with spaces",
        "EXPORTED": "1",
        "SINGLE": "no $expansion \\n here",
        "DOUBLE": 'line\nbreak "quoted"',
        "EMPTY": "",
        "SPACED": "x",
    }
    with pytest.raises(ValueError, match="line 2: expected KEY=VALUE"):
        parse_env_file(["A=1", "not an assignment"])
    with pytest.raises(ValueError, match='line 1: unterminated " quote'):
        parse_env_file(['A="open'])
    assert issubclass(ConfigError, Exception)


def test_env_file_with_a_bad_line_exits_2(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GOOD=1\n2BAD=x\n")
    result = run_cli(f"{APPS}:process", "--env-file", str(env_file), "--check-config")
    assert result.returncode == 2
    assert "line 2: expected KEY=VALUE" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_pid_file_names_the_main_process_and_goes_at_exit(tmp_path: Path, workers: str) -> None:
    pid_file = tmp_path / "gateway.pid"
    gateway = start(f"{APPS}:process", "-b", "127.0.0.1:0", "-w", workers, "--pid", str(pid_file))
    try:
        seen = requests.get(gateway.url + "/", timeout=10).json()
        main = seen["pid"] if workers == "1" else seen["ppid"]  # the master under -w 2
        assert pid_file.read_text() == f"{main}\n"
        assert main == gateway.proc.pid
        assert gateway.stop() == 0
        assert not pid_file.exists()
    finally:
        gateway.close()


def test_umask_applies_to_the_unix_socket_and_the_pid_file(tmp_path: Path) -> None:
    sock, pid_file = tmp_path / "g.sock", tmp_path / "g.pid"
    args = ["--uds", str(sock), "--pid", str(pid_file), "--umask", "077"]
    gateway = Gateway(f"{APPS}:process", *args)
    try:
        gateway.wait_for_line(r"Listening at unix:")
        assert stat.S_IMODE(os.stat(sock).st_mode) & 0o077 == 0
        assert stat.S_IMODE(os.stat(pid_file).st_mode) == 0o600
        assert gateway.stop() == 0
    finally:
        gateway.close()


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def reachable_by_everyone(path: str) -> bool:
    """Whether every folder above ``path`` lets others through (o+x)."""
    folders = [Path(path), *Path(path).parents]
    return all(os.stat(folder).st_mode & stat.S_IXOTH for folder in folders)


@root_only
@pytest.mark.parametrize(
    "workers",
    [
        pytest.param(
            "1",
            marks=pytest.mark.skipif(
                not reachable_by_everyone(sys.prefix),
                reason="Python lives where nobody cannot import from (a one-process "
                "gateway imports its apps after switching users)",
            ),
        ),
        "2",  # with --preload the master imports the apps before it switches
    ],
)
def test_user_serves_as_nobody_after_binding(tmp_path: Path, workers: str) -> None:
    nobody = pwd.getpwnam("nobody")
    sock = tmp_path / "g.sock"
    tmp_path.chmod(0o755)  # nobody must reach the socket's folder to connect
    gateway = start(
        f"{APPS}:process",
        "-b",
        "127.0.0.1:0",
        "--uds",
        str(sock),
        "-w",
        workers,
        *(["--preload"] if workers == "2" else []),  # the master imports, then switches
        "--user",
        "nobody",
        env={"PYTHONPATH": str(ROOT)},
    )
    try:
        seen = requests.get(gateway.url + "/", timeout=10).json()
        assert (seen["uid"], seen["gid"]) == (nobody.pw_uid, nobody.pw_gid)
        assert os.stat(sock).st_uid == nobody.pw_uid  # handed over
        status = Path(f"/proc/{gateway.proc.pid}/status").read_text()
        assert f"Uid:\t{nobody.pw_uid}\t" in status  # the main process too
        assert gateway.stop() == 0
    finally:
        gateway.close()


@root_only
def test_group_alone(tmp_path: Path) -> None:
    gateway = start(f"{APPS}:process", "-b", "127.0.0.1:0", "--group", "nogroup")
    try:
        import grp

        seen = requests.get(gateway.url + "/", timeout=10).json()
        assert (seen["uid"], seen["gid"]) == (0, grp.getgrnam("nogroup").gr_gid)
    finally:
        gateway.close()


def test_systemd_socket_activation_with_workers_and_a_pid_file(tmp_path: Path) -> None:
    """LISTEN_FDS/LISTEN_PID (sd_listen_fds(3)): the workers serve on the inherited fd 3."""
    import socket
    import subprocess
    import sys

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    pid_file = tmp_path / "sd.pid"
    argv = ["-m", "thor_gateway", f"{APPS}:process", "-w", "2", "--pid", str(pid_file)]
    launcher = (  # as systemd does: fd 3, and LISTEN_PID naming the process that execs
        "import os, sys\n"
        f"os.dup2({listener.fileno()}, 3, inheritable=True)\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
        f"os.execv(sys.executable, [sys.executable, *{argv!r}])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher],
        cwd=ROOT,
        pass_fds=(listener.fileno(),),
        stderr=subprocess.DEVNULL,
    )
    listener.close()  # the gateway's copy is the only one left
    try:

        def a_worker_answers() -> bool:
            try:
                seen = requests.get(f"http://127.0.0.1:{port}/sd", timeout=5).json()
            except requests.RequestException:  # queued until the gateway starts
                return False
            assert seen["ppid"] == proc.pid  # a worker of the master that systemd started
            return True

        poll(a_worker_answers, 20, "a worker on the systemd socket")
        assert pid_file.read_text() == f"{proc.pid}\n"
        proc.terminate()
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
