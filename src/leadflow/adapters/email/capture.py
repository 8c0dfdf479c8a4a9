"""CaptureEmailSender: writes each message as a ``.eml`` file in a folder instead of sending.

For the demo and for trying journeys without a mail server: open the files with any mail
client. A message sent again (same delivery key) overwrites its own file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from leadflow.adapters.email.mime import DkimSigner, build_mime, render_bytes
from leadflow.domain.errors import TransientDeliveryError
from leadflow.ports import EmailMessage, SendReceipt


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CaptureEmailSender:
    """An EmailSender that files messages in ``folder`` (created when missing)."""

    def __init__(
        self,
        folder: Path,
        id_domain: str,
        *,
        signer: DkimSigner | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.folder = folder
        self.id_domain = id_domain
        self.signer = signer
        self.now = now

    def path_of(self, key: str) -> Path:
        return self.folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".eml")

    def send(self, message: EmailMessage) -> SendReceipt:
        mime, message_id = build_mime(message, self.id_domain, self.now())
        raw = render_bytes(mime, self.signer)
        path = self.path_of(message.key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".eml.part")
            partial.write_bytes(raw)
            partial.replace(path)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write {path}: {exc}") from None
        return SendReceipt(provider_id=message_id, detail=f"written to {path}")

    def close(self) -> None:
        """Nothing to close; here so every transport can be closed the same way."""

    def __enter__(self) -> CaptureEmailSender:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
