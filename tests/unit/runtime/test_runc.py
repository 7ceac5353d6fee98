"""runc: reading runc's error messages."""

from __future__ import annotations

from kubelite.kubelet.runtime.runc import error_message


def test_logrus_text() -> None:
    stderr = 'time="2024-01-01T00:00:00Z" level=error msg="container \\"abc\\" does not exist"\n'
    assert error_message(stderr) == 'container "abc" does not exist'


def test_json_lines() -> None:
    stderr = '{"level":"warning","msg":"x"}\n{"level":"error","msg":"exec failed: no such file"}\n'
    assert error_message(stderr) == "exec failed: no such file"


def test_plain_text() -> None:
    assert error_message("something odd\n") == "something odd"
