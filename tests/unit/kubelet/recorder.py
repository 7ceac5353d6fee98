"""An event recorder that keeps what it is given, for tests."""

from __future__ import annotations

from typing import Any

from kubelite.client.events import EventRecorder


class RecordingRecorder(EventRecorder):
    def __init__(self) -> None:  # no broadcaster: nothing is sent
        self.component = "kubelet"
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]

    def messages(self) -> list[str]:
        return [message for _, _, message in self.events]
