"""The one exception type for anything that breaks the MQTT contract."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Invalid topic or payload; ``field`` says where, ``reason`` says what."""

    field: str
    reason: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[ProtocolError], tuple[str, str]]:
        # ValueError pickles as cls(*args) with the joined message; keep both parts instead,
        # so the error survives a trip through multiprocessing or a task queue.
        return (type(self), (self.field, self.reason))
