"""The `taskmill.payloads` surface: complete `__all__`, public module names, install hint."""

from __future__ import annotations

import subprocess
import sys
import types

import taskmill
import taskmill.payloads


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }


def test_all_is_sorted_and_complete() -> None:
    """`taskmill.payloads.__all__` is sorted and lists every public name."""
    assert sorted(taskmill.payloads.__all__) == taskmill.payloads.__all__
    assert _public_names(taskmill.payloads) == set(taskmill.payloads.__all__)


def test_exports_report_their_public_module() -> None:
    """Classes say `taskmill.payloads.X`; registry and errors live in `taskmill`."""
    for name in taskmill.payloads.__all__:
        value = getattr(taskmill.payloads, name)
        if isinstance(value, type):
            assert "taskmill.payloads" == value.__module__, name
    for value in (taskmill.TaskRegistry, taskmill.TaskSpec, taskmill.PayloadError):
        assert "taskmill" == value.__module__


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_missing_msgspec_gives_an_install_hint() -> None:
    """Without msgspec, importing taskmill.payloads says which extra to install."""
    result = _run("import sys\nsys.modules['msgspec'] = None\nimport taskmill.payloads")
    assert 0 != result.returncode
    assert "pip install 'taskmill[sqlite]'" in result.stderr


def test_fresh_process_decodes_with_public_names() -> None:
    """Structs still decode after their __module__ is rewritten (annotations resolved early)."""
    code = (
        "from taskmill.payloads import PayloadCodec, MsgpackSerializer\n"
        "for s in (None, MsgpackSerializer()):\n"
        "    c = PayloadCodec(serializer=s)\n"
        "    e = c.decode(c.encode(c.build('t', [1])))\n"
        "    assert e.args == [1], e\n"
        "    assert c.decode_error(c.encode_error(ValueError('x'))).message == 'x'\n"
        "print('ok')"
    )
    result = _run(code)
    assert ("ok", "") == (result.stdout.strip(), result.stderr)


class TestErrors:
    def test_unknown_task(self) -> None:
        """UnknownTask is a LookupError carrying the name and an optional hint."""
        error = taskmill.UnknownTask("a.b", hint="register it")
        assert isinstance(error, LookupError | taskmill.TaskmillError)
        assert ("a.b", "register it") == (error.name, error.hint)
        assert "no task registered as 'a.b'; register it" == str(error)

    def test_payload_error(self) -> None:
        """PayloadError is a ValueError whose str is its reason."""
        error = taskmill.PayloadError("bad", task="t", argument="0")
        assert isinstance(error, ValueError)
        assert ("bad", "t", "0", "bad") == (error.reason, error.task, error.argument, str(error))

    def test_payload_too_large(self) -> None:
        """PayloadTooLarge names the size and the limit."""
        error = taskmill.PayloadTooLarge("result", 11, 10, task="t")
        assert isinstance(error, taskmill.PayloadError)
        assert (11, 10, "t") == (error.size, error.limit, error.task)
        assert "result is 11 bytes, over the limit of 10 bytes" == error.reason

    def test_signature_error_is_a_payload_error(self) -> None:
        """A worker dead-letters every refusal with one `except PayloadError`."""
        assert issubclass(taskmill.SignatureError, taskmill.PayloadError)
