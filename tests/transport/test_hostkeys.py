"""The pin store on its own: trust on first use only when allowed, refusal of another key,
the known_hosts export that the system ssh reads, and a file that is always whole."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reconciler.observed import SshEndpoint
from runtime.errors import SshError, SshHostKeyMismatchError
from runtime.hostkeys import HostKey, HostKeyPins, known_hosts_host, write_known_hosts

ENDPOINT = SshEndpoint(host="203.0.113.7", port=40022)


def _host_key(tmp_path: Path, name: str) -> tuple[HostKey, Path]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    key_type, blob = path.with_suffix(".pub").read_text().split()[:2]
    return HostKey(key_type=key_type, key_base64=blob), path.with_suffix(".pub")


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key, public = _host_key(tmp_path, "k")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public)], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split()[1] == key.fingerprint


def test_first_key_is_pinned_only_when_allowed(tmp_path: Path) -> None:
    pins = HostKeyPins(tmp_path / "pins.json")
    key, _ = _host_key(tmp_path, "k")
    with pytest.raises(SshError, match="not allowed"):
        pins.verify("pod@1", ENDPOINT, key, allow_new=False)
    assert pins.pinned("pod@1") is None
    assert pins.verify("pod@1", ENDPOINT, key, allow_new=True) is True
    assert pins.verify("pod@1", ENDPOINT, key, allow_new=False) is False
    assert HostKeyPins(tmp_path / "pins.json").pinned("pod@1") == key


def test_another_key_for_a_pinned_id_is_refused_with_both_fingerprints(tmp_path: Path) -> None:
    pins = HostKeyPins(tmp_path / "pins.json")
    first, _ = _host_key(tmp_path, "first")
    second, _ = _host_key(tmp_path, "second")
    pins.verify("pod@1", ENDPOINT, first, allow_new=True)
    with pytest.raises(SshHostKeyMismatchError) as refused:
        pins.verify("pod@1", ENDPOINT, second, allow_new=True)
    assert first.fingerprint in str(refused.value) and second.fingerprint in str(refused.value)
    assert pins.pinned("pod@1") == first
    # A resume the caller asked for starts a new pin id, which takes the new key.
    assert pins.verify("pod@2", ENDPOINT, second, allow_new=True) is True


def test_forget_drops_only_that_pin(tmp_path: Path) -> None:
    pins = HostKeyPins(tmp_path / "pins.json")
    key, _ = _host_key(tmp_path, "k")
    pins.verify("pod@1", ENDPOINT, key, allow_new=True)
    pins.verify("pod@2", ENDPOINT, key, allow_new=True)
    pins.forget("pod@1")
    pins.forget("never-pinned")
    assert pins.pinned("pod@1") is None
    assert pins.pinned("pod@2") == key


def test_pin_file_is_versioned_json_without_temp_leftovers(tmp_path: Path) -> None:
    pins = HostKeyPins(tmp_path / "state" / "pins.json")
    key, _ = _host_key(tmp_path, "k")
    pins.verify("pod@1", ENDPOINT, key, allow_new=True)
    document = json.loads((tmp_path / "state" / "pins.json").read_text())
    assert document["format_version"] == 1
    assert document["pins"]["pod@1"]["fingerprint"] == key.fingerprint
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["pins.json"]


def test_unreadable_pin_file_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    path.write_text('{"format_version": 1, "pins": {"pod@1"')
    key, _ = _host_key(tmp_path, "k")
    with pytest.raises(SshError, match="unreadable"):
        HostKeyPins(path).verify("pod@1", ENDPOINT, key, allow_new=True)


def test_known_hosts_export_uses_openssh_host_notation(tmp_path: Path) -> None:
    key, _ = _host_key(tmp_path, "k")
    written = write_known_hosts(tmp_path / "known_hosts", ENDPOINT, key)
    assert written.read_text() == f"[203.0.113.7]:40022 {key.key_type} {key.key_base64}\n"
    assert known_hosts_host(SshEndpoint(host="203.0.113.7", port=22)) == "203.0.113.7"
