"""The one line an interrupted run says: what was cancelled on fal, and what only stopped being waited for."""

from __future__ import annotations

from kontext_nb.errors import JobCancelled
from kontext_nb.jobs import Job, interrupted


def _job(*, elsewhere: bool) -> Job:
    def cancel(job: Job) -> bool:
        job.settle(error=JobCancelled("cancelled"))
        return True

    job = Job("fal-ai/flux-pro/kontext", {"prompt": "a fox"}, cancel)
    job.elsewhere = elsewhere
    return job


def test_a_job_another_kernel_runs_is_not_reported_cancelled_on_fal() -> None:
    message = str(interrupted([_job(elsewhere=True)]))
    assert message == "stopped waiting for 1 job another kernel runs (it goes on there)"


def test_own_and_followed_jobs_are_told_apart() -> None:
    message = str(interrupted([_job(elsewhere=False), _job(elsewhere=True), _job(elsewhere=True)]))
    assert message == (
        "cancelled 1 job on fal (nothing is charged for it); stopped waiting for 2 jobs another kernel runs "
        "(it goes on there)"
    )
