"""Progress of long commands (gradbench.cli.progress): plain lines when not a terminal, at most
one per interval, with the total and the time left; one announcement of a long run."""

from __future__ import annotations

import pytest

from gradbench.cli import progress as progress_module
from gradbench.cli.progress import describe_seconds, progress


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def test_plain_lines_are_rate_limited_and_carry_the_total_and_time_left(clock, capsys):
    with progress("comparing", unit="pairs") as update:  # stderr is captured: not a terminal
        update(0, 10, "a × b")
        clock.now += 5
        update(1, 10, "a × c")  # 5 s in: too early for a line
        clock.now += 6
        update(2, 10, "a × d")  # 11 s in: a line; 2 of 10 in 11 s → 44 s left
        clock.now += 3
        update(3, 10, "a × e")  # 3 s after the last line: none
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["gradbench: comparing 2/10 pairs, 11 s elapsed, about 44 s left: a × d"]


def test_a_long_run_is_announced_once_with_its_estimate(clock, capsys):
    with progress("sweeping", unit="tasks") as update:
        update(0, 100, "")
        clock.now += 0.2
        update(0.001, 100, "")  # before FIRST_PROJECTION_AFTER_S: no projection yet
        clock.now += 0.8
        update(0.01, 100, "")  # 1 s for 1% of one task of 100: about 10⁴ s in all
        clock.now += 0.5
        update(0.02, 100, "")
    err = capsys.readouterr().err
    assert err.count("this run will take about") == 1
    assert "this run will take about 2 h 46 min at its pace so far (100 tasks)" in err


def test_a_short_run_prints_nothing(clock, capsys):
    with progress("comparing", unit="pairs") as update:
        for done in range(5):
            update(done, 5, "x")
            clock.now += 1
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42, "42 s"), (200, "3 min 20 s"), (7500, "2 h 5 min"), (3 * 86400, "3 days")],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert describe_seconds(seconds) == text
