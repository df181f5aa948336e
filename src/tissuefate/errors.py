"""One error type for bad input: it names the patient, the file and the fix."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input data: raised before anything is written.

    The message reads ``sub-001: path/to/file.nii.gz: what is wrong. Fix: what to do.``
    so that a researcher running hundreds of patients knows where to look.
    """

    def __init__(
        self,
        problem: str,
        *,
        participant: str | None = None,
        path: str | Path | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.participant = participant
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        if self.participant:
            parts.append(self.participant if self.participant.startswith("sub-") else f"sub-{self.participant}")
        if self.path:
            parts.append(self.path)
        parts.append(self.problem.rstrip("."))
        message = ": ".join(parts) + "."
        if self.fix:
            message += f" Fix: {self.fix.rstrip('.')}."
        return message
