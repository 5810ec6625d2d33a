"""The fal client layer: Kontext jobs through fal's queue, for the extension and the classroom proxy.

engine.py runs fal_client's AsyncClient on an event loop thread of its own; transport.py routes fal's hosts to a
base URL and holds the one retry policy; status.py follows a request (SSE stream, else polling); upload.py speaks
fal's storage protocol; collect.py downloads a finished job's output and images; protocol.py holds fal's error
shapes and header names; platform.py speaks fal's Platform APIs (usage, request history, pricing). It reports
through callbacks (JobHooks, Job.on_update).

May import: endpoints, errors, config, images, jobs, result. Never IPython, ipywidgets or the journal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .collect import collect_result
    from .engine import Engine, JobHooks, SubmitOptions
    from .platform import PlatformAPI
    from .protocol import fal_error, http_error
    from .status import StreamUnavailable, follow_stream, poll_status
    from .transport import FalTransport
    from .upload import StorageUploader

_LAZY = {
    "Engine": "engine",
    "JobHooks": "engine",
    "SubmitOptions": "engine",
    "FalTransport": "transport",
    "PlatformAPI": "platform",
    "StorageUploader": "upload",
    "collect_result": "collect",
    "follow_stream": "status",
    "poll_status": "status",
    "StreamUnavailable": "status",
    "http_error": "protocol",
    "fal_error": "protocol",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "Engine",
    "FalTransport",
    "JobHooks",
    "PlatformAPI",
    "StorageUploader",
    "StreamUnavailable",
    "SubmitOptions",
    "collect_result",
    "fal_error",
    "follow_stream",
    "http_error",
    "poll_status",
]
