"""Record-key HMACs: the helper process gives exactly what :mod:`hmac` gives, and a run whose
batches are hashed by it writes the same audit log as one hashed in-process.

The helper is a real child process; these tests kill it, feed it awkward keys and look at what
it was started with, as an operator would when checking where the HMAC key goes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retention import audit as audit_module
from retention.audit import AuditLog
from retention.hmackeys import HmacHelper, KeyHmac
from retention.statedb import open_state

KEY = b"helper-test-key-not-secret"


def reference(keys: list[str], key: bytes = KEY) -> str:
    digests = [
        hmac.new(key, k.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest() for k in keys
    ]
    return json.dumps(digests)


@pytest.fixture
def helper() -> HmacHelper:
    started = HmacHelper(KEY)
    yield started
    started.close()


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.text(max_size=20), max_size=20),
    key=st.binary(min_size=0, max_size=100),
)
def test_key_hmac_is_hmac_sha256(keys: list[str], key: bytes) -> None:
    """Any key length (longer than a block is hashed first), any text, lone surrogates too."""
    assert KeyHmac(key).json_list(keys) == reference(keys, key)


def test_helper_answers_every_batch_exactly(helper: HmacHelper) -> None:
    batches = [[str(n) for n in range(start, start + 3000)] for start in (0, 5000, 9000)]
    batches.append(["é", "a/b", '"quoted"', "\\", "tab\there", "\udc80"])
    tickets = [helper.submit(batch) for batch in batches]
    # collected out of order: each ticket still gets its own batch's answer
    for index in (2, 0, 3, 1):
        assert helper.result(tickets[index]) == reference(batches[index])


def test_key_with_a_line_break_is_hashed_here(helper: HmacHelper) -> None:
    batch = ["1", "two\nlines", "3"]
    assert helper.result(helper.submit(batch)) == reference(batch)
    assert helper.result(helper.submit(["4", "5"])) == reference(["4", "5"])


def test_dead_helper_falls_back_to_hashing_here(helper: HmacHelper) -> None:
    first = [str(n) for n in range(2000)]
    assert helper.result(helper.submit(first)) == reference(first)
    assert helper.pid is not None
    os.kill(helper.pid, signal.SIGKILL)
    _wait_until_gone(helper.pid)
    for batch in (["a", "b"], [str(n) for n in range(100, 3000)]):
        assert helper.result(helper.submit(batch)) == reference(batch)


def test_helper_never_sees_the_key_on_its_command_line_or_environment(
    helper: HmacHelper,
) -> None:
    assert helper.pid is not None
    proc = Path("/proc") / str(helper.pid)
    if not proc.exists():
        pytest.skip("no /proc on this system")
    assert KEY not in (proc / "cmdline").read_bytes()
    assert KEY not in (proc / "environ").read_bytes()


def test_close_stops_the_helper() -> None:
    started = HmacHelper(KEY)
    pid = started.pid
    assert pid is not None
    started.close()
    assert started.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_audit_log_protect_later_matches_protect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the audit log: large batches go to the helper, small ones are hashed at once;
    both give what :meth:`AuditLog.protect` gives, JSON encoding included."""
    monkeypatch.setattr(audit_module, "HELPER_FROM_KEYS", 100)
    log = AuditLog(open_state("sqlite://"), keys="hmac", hmac_key=KEY)
    try:
        large = [str(n) for n in range(500)]
        small = ["1", "2"]
        later = [log.protect_later(large), log.protect_later(small)]
        assert log.helper_pid is not None  # the large batch started it
        assert later[0]() == log.protect(large)
        assert later[1]() == log.protect(small)
    finally:
        log.close()
    assert log.helper_pid is None


def test_helper_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A run killed with SIGKILL (OOM killer, `kill -9`) leaves no helper process behind."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from retention.hmackeys import HmacHelper\n"
        "helper = HmacHelper(b'k')\n"
        "helper.result(helper.submit([str(n) for n in range(5000)]))\n"
        "print(helper.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            os.kill(child, 0)  # alive while its parent is
        finally:
            parent.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        if _is_zombie(child):  # exited; only not yet reaped by init
            return
        time.sleep(0.05)
    pytest.fail(f"helper {child} outlived its killed parent")


def _wait_until_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _is_zombie(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("executable", ["", "/nonexistent/python3"], ids=["embedded", "missing"])
def test_no_helper_can_start_keys_are_hashed_here(
    monkeypatch: pytest.MonkeyPatch, executable: str
) -> None:
    monkeypatch.setattr(sys, "executable", executable)
    started = HmacHelper(KEY)
    try:
        assert started.pid is None
        batch = [str(n) for n in range(1500)]
        assert started.result(started.submit(batch)) == reference(batch)
    finally:
        started.close()
