"""LR schedules (fastadv.training.schedules)."""
import pytest

from fastadv.training.schedules import LRSchedule, Schedule, as_schedule


def test_cyclic_schedule_is_a_triangle_with_configurable_peak():
    s = LRSchedule("cyclic", 0.2, epochs=10, iterations_per_epoch=10, peak=0.4)
    lrs = [s(i) for i in range(100)]
    top = max(range(100), key=lambda i: lrs[i])
    assert top in (39, 40) and lrs[top] == pytest.approx(0.2, rel=0.02)
    assert lrs[0] < 0.01 and lrs[-1] < 0.01 and min(lrs) > 0
    assert all(a < b for a, b in zip(lrs[:39], lrs[1:40]))
    assert all(a > b for a, b in zip(lrs[41:], lrs[42:]))


def test_piecewise_and_cosine_schedules():
    s = LRSchedule("piecewise", 0.1, epochs=4, iterations_per_epoch=5, milestones=(2, 3), decay=0.1)
    assert [s(i) for i in (0, 9, 10, 14, 15, 19)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    c = LRSchedule("cosine", 1.0, epochs=1, iterations_per_epoch=100)
    assert c(0) == pytest.approx(1.0, abs=1e-3) and c(49) == pytest.approx(0.5, abs=0.02)
    assert c(99) < 1e-3
    with pytest.raises(ValueError, match="schedule"):
        LRSchedule("step", 0.1, epochs=1, iterations_per_epoch=1)


def test_schedule_objects_and_bad_knobs():
    bound = Schedule("cyclic", peak=0.4).bind(0.2, epochs=10, iterations_per_epoch=10)
    assert max(range(100), key=bound) in (39, 40)
    assert as_schedule("cosine") == Schedule("cosine")
    with pytest.raises(ValueError, match="schedule must be one of"):
        as_schedule("step")
    with pytest.raises(TypeError, match="schedule must be a str"):
        as_schedule(3)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="peak"):
            Schedule("cyclic", peak=bad).bind(0.1, epochs=1, iterations_per_epoch=1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        LRSchedule("constant", 0.0, epochs=1, iterations_per_epoch=1)
