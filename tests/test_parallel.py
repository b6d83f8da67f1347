"""Worker processes: results in job order, errors in turn, nothing started for a single job."""

from __future__ import annotations

import os

import pytest

from quack.data.parallel import Workers, available_cores


def where(job: int, tag: str) -> tuple[int, str, int]:
    """The job, the arguments it got, and the process that ran it."""
    return job, tag, os.getpid()


def fail_on_three(job: int, tag: str) -> int:
    if job == 3:
        raise ValueError(f"job {job} is bad input")
    return job


def jobs_then_error(count: int):
    yield from range(count)
    raise ValueError("the input ends early")


@pytest.mark.slow
def test_results_come_back_in_job_order_from_worker_processes():
    with Workers(2) as workers:
        results = list(workers.map(where, range(12), here=("here",), there=("there",)))
    assert [job for job, _, _ in results] == list(range(12))
    # Some jobs ran in workers, with the arguments meant for them.
    assert {(tag, pid == os.getpid()) for _, tag, pid in results} >= {("there", False)}
    assert all((tag == "here") == (pid == os.getpid()) for _, tag, pid in results)


@pytest.mark.parametrize("count", [1, 4])
def test_one_worker_or_one_job_runs_here(count):
    with Workers(count) as workers:
        assert list(workers.map(where, [7], here=("here",), there=("there",))) == [(7, "here", os.getpid())]
        if count == 1:
            assert {pid for *_, pid in workers.map(where, range(5), here=("here",))} == {os.getpid()}
        assert not workers.started


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("read", [0, 1, 6])
def test_an_error_while_reading_jobs_comes_after_the_results_before_it(count, read):
    seen = []
    with Workers(count) as workers:
        with pytest.raises(ValueError, match="the input ends early"):
            for job, *_ in workers.map(where, jobs_then_error(read), here=("here",), there=("there",)):
                seen.append(job)
    assert seen == list(range(read))


@pytest.mark.parametrize("count", [1, 2])
def test_an_error_in_a_job_comes_in_its_turn(count):
    seen = []
    with Workers(count) as workers:
        with pytest.raises(ValueError, match="job 3 is bad input"):
            for job in workers.map(fail_on_three, range(8), here=("here",), there=("there",)):
                seen.append(job)
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_a_count_that_is_no_positive_integer_is_refused(count):
    with pytest.raises(ValueError, match="number of workers must be a positive integer"):
        Workers(count)


def test_available_cores_is_at_least_one():
    assert available_cores() >= 1
