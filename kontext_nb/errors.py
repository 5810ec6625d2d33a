"""Exceptions users catch. Messages are one readable line and never contain the fal key."""

from __future__ import annotations


class KontextError(Exception):
    """Base class for every error kontext_nb raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the message says all a user needs
        return [f"{type(self).__name__}: {self}"]


class ValidationError(KontextError, ValueError):
    """Bad input, found before anything is sent or paid for."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ImageInputError(ValidationError):
    """An image source that cannot be read, decoded or sent."""


class FalError(KontextError):
    """fal (or a fal-compatible server) refused a request or the job failed there."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        field_errors: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        self.field_errors: list[tuple[str, str]] = list(field_errors or [])
        """For a 422: (field, message) for every input fal refused."""


class JobFailed(FalError):
    """The job ended without images: fal's message says why."""


class JobCancelled(KontextError):
    """The job was cancelled (by the user, an interrupt or a timeout) before it finished."""


class JobTimeout(KontextError, TimeoutError):
    """The job ran past the engine's per-job timeout; it may still finish on fal."""


class BudgetError(KontextError):
    """A spending cap would be passed; nothing was sent."""


class ConfirmationRequired(BudgetError):
    """One call would spend more than the confirmation threshold; pass confirm=True."""


class ImageTooLarge(KontextError):
    """A result image with more pixels than kontext_nb decodes (images.MAX_INPUT_PIXELS): its file is kept as
    received, and outputs show one line instead of a preview."""


class JournalError(KontextError):
    """The journal cannot be used (corrupt, newer schema, unwritable) or a reference is unknown."""


class PandasMissing(KontextError, ImportError):
    """to_pandas was called without pandas installed (it is optional)."""


class RetriesExhausted(FalError):
    """A request kept failing with a retryable error; the last one is described."""


class SubmitUnconfirmed(FalError):
    """A submit's connection broke after the request was sent: fal may have accepted (and may bill) it.

    Never retried (that could run and bill the job twice); the journal records it as 'unconfirmed'."""


class DownloadFailed(FalError):
    """A finished job's image could not be downloaded this time; the job stays collectable (kx.resume)."""


class Interrupted(JobCancelled, KeyboardInterrupt):
    """A kernel interrupt stopped a blocking run (its jobs cancelled on fal) or a wait for jobs made earlier (they go
    on). Still a KeyboardInterrupt, so scripts stop as they would; IPython shows only the one line."""
