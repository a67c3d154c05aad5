"""Batch windows sized by the work in them: they grow while batches are quick, shrink when one
runs long, and never pass the `batch_size` cap or drop below the floor."""

from __future__ import annotations

from retention.stores.windows import FIRST_WINDOW, FLOOR, WindowSizer


class Ticking:
    """A monotonic clock that advances by the given step at each reading."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def sizes(sizer: WindowSizer, n: int) -> list[int]:
    return [sizer.next() for _ in range(n)]


def test_the_first_window_is_the_old_fixed_size_within_the_cap() -> None:
    assert WindowSizer(100_000, 1.0).next() == FIRST_WINDOW
    assert WindowSizer(300, 1.0).next() == 300


def test_quick_batches_double_the_window_up_to_the_cap() -> None:
    sizer = WindowSizer(60_000, 1.0, clock=Ticking(0.01))
    assert sizes(sizer, 6) == [5_000, 10_000, 20_000, 40_000, 60_000, 60_000]


def test_slow_batches_halve_the_window_down_to_the_floor() -> None:
    sizer = WindowSizer(100_000, 1.0, clock=Ticking(10.0))
    assert sizes(sizer, 5) == [5_000, 2_500, 1_250, FLOOR, FLOOR]


def test_a_window_settles_where_its_batch_takes_the_target_time() -> None:
    """A batch that takes half the target grows the window by half of what it could: steps are
    the ratio of target to elapsed time, bounded to a doubling or a halving."""
    sizer = WindowSizer(100_000, 1.0, clock=Ticking(0.8))
    assert sizes(sizer, 3) == [5_000, 6_250, 7_812]


def test_a_small_cap_is_a_fixed_size() -> None:
    """`batch_size` below the floor is every window's size, quick or slow."""
    assert sizes(WindowSizer(3, 1.0, clock=Ticking(0.001)), 4) == [3, 3, 3, 3]
    assert sizes(WindowSizer(3, 1.0, clock=Ticking(100.0)), 4) == [3, 3, 3, 3]
