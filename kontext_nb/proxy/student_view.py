"""What a student's notebook shows about the proxy: ``GET /kontext/proxy`` with the student's token.

The panel and ``%kontext status`` read it, so a student sees what the proxy allows (models, the
safety_tolerance ceiling, the safety checker kept on) and how much of their quota is left, rather than
controls and a "custom" backend that the proxy would refuse.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kontext_nb import endpoints

from .classroom import today
from .limits import MICROS_PER_DOLLAR, to_micros
from .state import guarded, proxy_of

PATH = "/kontext/proxy"


def _left(cap: int | None, used: int) -> int | None:
    return None if cap is None else max(0, cap - used)


@guarded
async def view(request: Request) -> Response:
    proxy = proxy_of(request)
    student = proxy.authenticate(request)
    if isinstance(student, Response):
        return student
    limits = proxy.limits
    usage = proxy.classroom.student_usage(student.name, today(), proxy.session)
    cap = None if limits.dollars_per_session is None else to_micros(limits.dollars_per_session)
    dollars_left = _left(cap, usage.spent_micros)
    upload_cap = proxy.config.bounds.upload_bytes_per_day
    level = limits.max_safety_tolerance
    body: dict[str, Any] = {
        "proxy": "kontext_nb classroom proxy",
        "url": proxy.base(request),
        "student": student.name,
        "session": proxy.session,
        "endpoints": list(endpoints.ENDPOINTS),
        "safety_tolerances": [t for t in endpoints.SAFETY_TOLERANCES if int(t) <= int(level)],
        "enable_safety_checker": [True],
        "limits": limits.as_dict(),
        "used": {
            "images_today": usage.images_today,
            "dollars_session": usage.spent_micros / MICROS_PER_DOLLAR,
            "jobs_in_flight": usage.in_flight,
        },
        "left": {
            "images_today": _left(limits.images_per_day, usage.images_today),
            "dollars_session": None if dollars_left is None else dollars_left / MICROS_PER_DOLLAR,
            "jobs_in_flight": _left(limits.jobs_in_flight, usage.in_flight),
            "upload_bytes_today": _left(upload_cap, proxy.classroom.uploaded(student.name, today())),
        },
    }
    return JSONResponse(body)


def routes() -> list[Route]:
    return [Route(PATH, view, methods=["GET"])]
