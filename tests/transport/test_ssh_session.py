"""SshSession against a real sshd: commands, one reused connection, pinning, files, keys."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.errors import RemoteCommandError, SshError, SshHostKeyMismatchError
from runtime.hostkeys import HostKeyPins
from runtime.ssh import SshSession
from tests.transport.transport_sshd import SshServer

OpenSession = Callable[..., SshSession]


def test_exit_status_stdout_and_stderr_come_back_apart(open_session: OpenSession) -> None:
    session = open_session()
    result = session.run("echo out; echo err >&2; exit 3", check=False)
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert session.run("[[ -n bash ]] && echo yes").stdout == "yes\n"  # bash, not sh


def test_check_raises_with_the_output_tail(open_session: OpenSession) -> None:
    session = open_session()
    with pytest.raises(RemoteCommandError) as failed:
        session.run("seq 1 5000; echo boom >&2; exit 7")
    assert failed.value.exit_status == 7
    assert failed.value.output_tail.endswith("5000\nboom\n")
    assert len(failed.value.output_tail) <= 2000


def test_env_and_stdin_reach_the_command(open_session: OpenSession) -> None:
    session = open_session()
    result = session.run(
        'printf "%s|" "$GREETING"; cat', env={"GREETING": "it's a $HOME"}, stdin="piped"
    )
    assert result.stdout == "it's a $HOME|piped"


def test_twenty_commands_share_one_connection(open_session: OpenSession, sshd: SshServer) -> None:
    session = open_session()
    outputs = [session.run(f"echo {i}").stdout for i in range(20)]
    assert outputs == [f"{i}\n" for i in range(20)]
    assert session.connections_opened == 1
    assert session.commands_run == 20
    assert sshd.connection_count() == 1


def test_a_dead_link_is_reopened_before_the_next_command(
    open_session: OpenSession, sshd: SshServer
) -> None:
    session = open_session()
    session.run("true")
    sshd.kill_sessions()
    assert session.run("echo back").stdout == "back\n"
    assert session.connections_opened == 2


def test_command_timeout_raises(open_session: OpenSession) -> None:
    with pytest.raises(SshError, match="timed out"):
        open_session().run("sleep 5", timeout_sec=0.5)


def test_sensitive_commands_and_env_values_are_never_logged(
    open_session: OpenSession, caplog: pytest.LogCaptureFixture
) -> None:
    session = open_session()
    caplog.set_level(logging.DEBUG, logger="runtime")
    session.run('test -n "$TOKEN"', env={"TOKEN": "canary-env-value"})
    with pytest.raises(RemoteCommandError) as failed:
        session.run("echo canary-command-text >/dev/null; exit 2", sensitive=True)
    assert "canary-command-text" not in str(failed.value)
    assert "TOKEN" in caplog.text
    assert "canary" not in caplog.text


def test_put_text_is_atomic_private_and_readable_back(
    open_session: OpenSession, tmp_path: Path
) -> None:
    session = open_session()
    target = tmp_path / "remote" / "secrets" / "env"
    session.put_text(str(target), "API_KEY=canary\n", mode=0o600)
    assert session.get_text(str(target)) == "API_KEY=canary\n"
    assert target.stat().st_mode & 0o777 == 0o600
    session.put_text(str(target), "replaced\n", mode=0o640)
    assert target.read_text() == "replaced\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["env"]  # no temp files left
    with pytest.raises(RemoteCommandError):
        session.get_text(str(tmp_path / "missing"))


def test_host_key_is_pinned_on_first_contact_and_a_new_key_is_refused(
    open_session: OpenSession, sshd: SshServer, pins: HostKeyPins
) -> None:
    session = open_session("pod@1")
    session.connect()
    pinned = pins.pinned("pod@1")
    assert pinned is not None and f"{pinned.key_type} {pinned.key_base64}" == sshd.host_public_key

    sshd.restart(new_host_key=True)  # the pod came back with a new container
    with pytest.raises(SshHostKeyMismatchError, match=re.escape(pinned.fingerprint)):
        session.run("true")  # the reconnect is checked too: no silent trust
    with pytest.raises(SshHostKeyMismatchError):
        open_session("pod@1").connect()

    resumed = open_session("pod@2")  # a resume the caller asked for: a new pin id
    assert resumed.run("echo ok").stdout == "ok\n"


def test_restart_with_the_same_key_keeps_the_pin(
    open_session: OpenSession, sshd: SshServer
) -> None:
    session = open_session()
    session.run("true")
    sshd.restart(new_host_key=False)
    assert session.run("echo same").stdout == "same\n"


def test_unpinned_host_is_refused_when_new_keys_are_not_allowed(
    open_session: OpenSession, pins: HostKeyPins
) -> None:
    with pytest.raises(SshError, match="not allowed"):
        open_session(allow_new_host_key=False).connect()
    assert pins.pinned("pod@1") is None


def test_loose_key_permissions_are_warned_about(
    tmp_path: Path,
    client_key: Path,
    pins: HostKeyPins,
    sshd: SshServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loose = tmp_path / "loose_key"
    shutil.copy(client_key, loose)
    loose.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="runtime.ssh"):
        SshSession(sshd.endpoint, key_path=loose, pins=pins, pin_id="pod@1").close()
    assert f"chmod 600 {loose}" in caplog.text


def test_strict_key_permissions_give_no_warning(
    client_key: Path, pins: HostKeyPins, sshd: SshServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="runtime.ssh"):
        SshSession(sshd.endpoint, key_path=client_key, pins=pins, pin_id="pod@1").close()
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot be read"), ("not a key\n", "cannot be loaded")],
)
def test_missing_or_garbage_key_is_a_clear_error(
    tmp_path: Path, pins: HostKeyPins, sshd: SshServer, content: str | None, message: str
) -> None:
    key = tmp_path / "id_missing"
    if content is not None:
        key.write_text(content)
        key.chmod(0o600)
    with pytest.raises(SshError, match=message):
        SshSession(sshd.endpoint, key_path=key, pins=pins, pin_id="pod@1")
