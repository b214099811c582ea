"""Small work's thread count is chosen by timing it as it runs (`emoclip.inference.small_work`):
both counts are tried, the faster serves, the slower is tried again at growing gaps, and a change
of load (the slower becoming the faster) is followed."""

from __future__ import annotations

import pytest
import torch

from emoclip.inference import parallel, small_work
from emoclip.inference.small_work import EXPLORE_FIRST, EXPLORE_MAX, TRIALS, SmallWorkThreads


def run(chooser: SmallWorkThreads, cost: dict[int, float], calls: int, kind: str = "frames"):
    """`calls` calls of `kind` whose seconds per item on n threads are `cost[n]`; the counts used."""
    used = []
    for _ in range(calls):
        n = chooser.pick(kind, 2)
        chooser.record(kind, 2, n, cost[n], items=1)
        used.append(n)
    return used


def test_both_counts_are_tried_then_the_faster_serves():
    chooser = SmallWorkThreads()
    warm = run(chooser, {1: 0.060, 2: 0.035}, 2 * (TRIALS + 1))
    assert sorted(warm) == [1] * (TRIALS + 1) + [2] * (TRIALS + 1)  # alternating warm-up + trials
    after = run(chooser, {1: 0.060, 2: 0.035}, EXPLORE_FIRST - 1)
    assert after == [2] * (EXPLORE_FIRST - 1)
    assert chooser.choices()["frames@2"][2] == pytest.approx(0.035)


def test_a_busy_machine_moves_small_work_to_one_thread_and_back():
    chooser = SmallWorkThreads()
    run(chooser, {1: 0.060, 2: 0.035}, 40)  # idle: two threads are faster
    busy = run(chooser, {1: 0.030, 2: 0.900}, 300)  # other jobs start: a second thread waits
    assert busy[-50:] == [1] * 50
    tries = busy.count(2)
    assert 2 <= tries <= 12  # the slow count is tried again, less and less often (gap doubling)
    idle = run(chooser, {1: 0.060, 2: 0.035}, EXPLORE_MAX + 40)  # the jobs end
    assert idle[-30:] == [2] * 30


def test_kinds_and_thread_counts_are_chosen_apart():
    chooser = SmallWorkThreads()
    run(chooser, {1: 0.060, 2: 0.035}, 20, kind="frames")
    run(chooser, {1: 0.001, 2: 0.004}, 20, kind="score")
    assert chooser.pick("frames", 2) == 2 and chooser.pick("score", 2) == 1
    assert chooser.pick("frames", 1) == 1  # one thread is all there is


def test_threads_for_runs_auto_work_on_the_picked_count(monkeypatch):
    chooser = SmallWorkThreads()
    monkeypatch.setattr(small_work, "SMALL_WORK", chooser)
    monkeypatch.setattr(parallel, "SMALL_WORK", chooser)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        for _ in range(2 * (TRIALS + 1)):
            with parallel.threads_for(None, 1, "frames"):
                seen.append(torch.get_num_threads())
            assert torch.get_num_threads() == 2  # restored
        assert sorted(seen) == [1] * (TRIALS + 1) + [2] * (TRIALS + 1)
        assert set(chooser.choices()["frames@2"]) == {1, 2}  # both timed
        with parallel.threads_for(1, 1, "frames"):  # a number forces it, untimed
            assert torch.get_num_threads() == 1
        with parallel.threads_for(0, 1, "frames"):  # 0 keeps torch's setting
            assert torch.get_num_threads() == 2
        with parallel.threads_for(None, parallel.SMALL_BATCH + 1, "frames"):  # not small work
            assert torch.get_num_threads() == 2
        assert sum(chooser.choices()["frames@2"].values()) > 0
    finally:
        torch.set_num_threads(previous)
