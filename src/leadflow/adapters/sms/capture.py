"""A transport that writes each text as one JSON line to a file, for demos and trials."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson

from leadflow.domain.sms import count_segments
from leadflow.ports import SendReceipt, SmsMessage


class CaptureSmsSender:
    """Appends ``{"key", "to", "from", "text", "encoding", "parts", "at"}`` lines to ``path``."""

    def __init__(self, path: Path, sender: str | None = None) -> None:
        self.path = path
        self.sender = sender
        self._lock = threading.Lock()

    def send(self, message: SmsMessage) -> SendReceipt:
        count = count_segments(message.text)
        parts = max(count.parts, 1)
        line = {
            "key": message.key,
            "to": message.to,
            "from": message.sender or self.sender,
            "text": message.text,
            "encoding": count.encoding.value,
            "parts": parts,
            "at": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as out:
                out.write(orjson.dumps(line) + b"\n")
        return SendReceipt(message.key, f"captured in {self.path}", parts)
