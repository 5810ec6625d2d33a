"""Quota arithmetic: may a request go ahead, given what its student and the class have used?

Pure functions over plain numbers, so the rules can be read and tested without a server.
Money is counted in integer micro-dollars: 25 jobs at $0.08 must come to exactly $2.00,
which floats do not (they make 2.0000000000000004 and refuse the 25th job).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kontext_nb import endpoints

MICROS_PER_DOLLAR = 1_000_000


def to_micros(dollars: float) -> int:
    return round(dollars * MICROS_PER_DOLLAR)


def to_dollars(micros: int) -> float:
    return round(micros / MICROS_PER_DOLLAR, 6)


def money(micros: int) -> str:
    return f"${micros / MICROS_PER_DOLLAR:.2f}"


@dataclass(frozen=True)
class Limits:
    """What students may use. None means unlimited."""

    images_per_day: int | None = 40
    """Images per student per calendar day (the proxy's local day)."""
    dollars_per_session: float | None = 2.00
    """Dollars per student per session (jobs of the same session name, across restarts)."""
    jobs_in_flight: int | None = 2
    """Jobs per student waiting in the proxy or running upstream at once."""
    class_images_per_day: int | None = None
    class_dollars_per_session: float | None = None
    class_in_flight: int | None = 8
    """Jobs running upstream at once for the whole class; more wait in the proxy, served round-robin."""
    max_safety_tolerance: str = "2"
    """The most permissive safety_tolerance students may use (fal: 1 strictest, 6 most permissive)."""

    def __post_init__(self) -> None:
        for name in ("images_per_day", "jobs_in_flight", "class_images_per_day", "class_in_flight"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a whole number >= 0 or None, not {value!r}")
        if self.class_in_flight == 0:
            raise ValueError("class_in_flight must be at least 1 (or None for no limit)")
        for name in ("dollars_per_session", "class_dollars_per_session"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a number of dollars >= 0 or None, not {value!r}")
        level = str(self.max_safety_tolerance)
        if level not in endpoints.SAFETY_TOLERANCES:
            raise ValueError(f"max_safety_tolerance must be one of {', '.join(endpoints.SAFETY_TOLERANCES)}")
        object.__setattr__(self, "max_safety_tolerance", level)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line, for the start-up banner and the instructor page."""

        def n(value: int | None, unit: str) -> str:
            return f"unlimited {unit}" if value is None else f"{value} {unit}"

        def d(value: float | None, unit: str) -> str:
            return f"unlimited {unit}" if value is None else f"${value:.2f} {unit}"

        return (
            f"per student {n(self.images_per_day, 'images/day')}, {d(self.dollars_per_session, 'per session')}, "
            f"{n(self.jobs_in_flight, 'jobs in flight')}; class {n(self.class_images_per_day, 'images/day')}, "
            f"{d(self.class_dollars_per_session, 'per session')}, {n(self.class_in_flight, 'jobs upstream at once')}; "
            f"safety_tolerance at most {self.max_safety_tolerance}"
        )


@dataclass(frozen=True)
class Usage:
    """What a student (or the class) has counted against its limits: reserved plus settled."""

    images_today: int = 0
    spent_micros: int = 0
    in_flight: int = 0


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the X-Kontext-Limit kind, the HTTP status and one readable line."""

    kind: str
    status: int
    message: str


def check(limits: Limits, student: Usage, klass: Usage, images: int, cost_micros: int) -> Refusal | None:
    """The first limit this request (``images`` images costing ``cost_micros``) would break, or None."""
    if limits.images_per_day is not None and student.images_today + images > limits.images_per_day:
        left = max(0, limits.images_per_day - student.images_today)
        return Refusal(
            "images-per-day",
            429,
            f"you have made {student.images_today} of your {limits.images_per_day} images today and this request "
            f"asks for {images} ({left} left); the count starts again tomorrow",
        )
    if limits.dollars_per_session is not None:
        cap = to_micros(limits.dollars_per_session)
        if student.spent_micros + cost_micros > cap:
            left = max(0, cap - student.spent_micros)
            return Refusal(
                "dollars-per-session",
                429,
                f"this request costs {money(cost_micros)} and you have {money(left)} left of your "
                f"{money(cap)} for this session",
            )
    if limits.class_images_per_day is not None and klass.images_today + images > limits.class_images_per_day:
        return Refusal(
            "class-images-per-day",
            429,
            f"the class has made {klass.images_today} of its {limits.class_images_per_day} images today; "
            "ask your instructor",
        )
    if limits.class_dollars_per_session is not None:
        cap = to_micros(limits.class_dollars_per_session)
        if klass.spent_micros + cost_micros > cap:
            return Refusal(
                "class-dollars-per-session",
                429,
                f"the class has spent {money(klass.spent_micros)} of its {money(cap)} for this session "
                f"and this request costs {money(cost_micros)}; ask your instructor",
            )
    if limits.jobs_in_flight is not None and student.in_flight + 1 > limits.jobs_in_flight:
        return Refusal(
            "jobs-in-flight",
            429,
            f"you already have {student.in_flight} jobs waiting or running (at most {limits.jobs_in_flight} "
            "at once): wait for one to finish",
        )
    return None
