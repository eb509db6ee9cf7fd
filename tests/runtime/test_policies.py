"""Table-driven tests of the pure scheduling policies."""

from __future__ import annotations

import random

import pytest

from neptune_runtime.policies import (
    POLICIES,
    ExecutorView,
    Kill,
    NeptuneConfig,
    Place,
    Resume,
    Snapshot,
    Suspend,
    TaskView,
    fair,
    fifo,
    get_policy,
    kill,
    neptune,
)


def batch(tid: str, ready: float = 0.0, partition: int = 0, suspensions: int = 0,
          resumed_at: float = 0.0, started_at: float = 0.0,
          suspended_s: float = 0.0) -> TaskView:
    return TaskView(tid, "train", "batch", 0, ready, partition, suspensions, resumed_at,
                    started_at, suspended_s)


def stream(tid: str, ready: float = 1.0, priority: int = 10) -> TaskView:
    return TaskView(tid, "score", "stream", priority, ready)


def ex(eid: str, running: TaskView | None = None, suspended: tuple[TaskView, ...] = (),
       memory: tuple[int, int] = (0, 0),
       partitions: frozenset[tuple[str, int]] = frozenset()) -> ExecutorView:
    return ExecutorView(eid, running, suspended, memory[0], memory[1], partitions)


def snap(executors: list[ExecutorView], queue: list[TaskView], now: float = 10.0) -> Snapshot:
    return Snapshot(now, tuple(executors), tuple(queue))


CASES = [
    # (name, policy, snapshot, expected decisions)
    ("fifo: arrival order onto idle executors", fifo,
     snap([ex("e0"), ex("e1")], [stream("s1", ready=2.0), batch("b1", ready=1.0)]),
     [Place("b1", "e0"), Place("s1", "e1")]),
    ("fifo: never preempts", fifo,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]), []),
    ("fair: priority first", fair,
     snap([ex("e0")], [batch("b1", ready=0.0), stream("s1", ready=5.0)]),
     [Place("s1", "e0")]),
    ("fair: waits for the running batch task", fair,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]), []),
    ("fair: equal priority keeps arrival order", fair,
     snap([ex("e0")], [batch("b2", ready=2.0), batch("b1", ready=1.0)]),
     [Place("b1", "e0")]),
    ("kill: kills the lower-priority task", kill,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]),
     [Kill("b0", "e0"), Place("s1", "e0")]),
    ("kill: uses an idle executor before killing", kill,
     snap([ex("e0", running=batch("b0")), ex("e1")], [stream("s1")]),
     [Place("s1", "e1")]),
    ("kill: never kills equal priority", kill,
     snap([ex("e0", running=batch("b0"))], [batch("b1")]), []),
    ("kill: kills the most recently started of two", kill,
     snap([ex("e0", running=batch("b0", resumed_at=1.0)),
           ex("e1", running=batch("b1", resumed_at=5.0))], [stream("s1")]),
     [Kill("b1", "e1"), Place("s1", "e1")]),
    ("neptune: suspends instead of killing", neptune,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]),
     [Suspend("b0", "e0"), Place("s1", "e0")]),
    ("neptune: idle executor first", neptune,
     snap([ex("e0", running=batch("b0")), ex("e1")], [stream("s1")]),
     [Place("s1", "e1")]),
    ("neptune: locality among idle executors", neptune,
     snap([ex("e0"), ex("e1", partitions=frozenset({("train", 3)}))], [batch("b3", partition=3)]),
     [Place("b3", "e1")]),
    ("neptune: resumes a suspended task when its slot frees", neptune,
     snap([ex("e0", suspended=(batch("b0"),))], []),
     [Resume("b0", "e0")]),
    ("neptune: a stream task runs before resuming batch", neptune,
     snap([ex("e0", suspended=(batch("b0"),))], [stream("s1")]),
     [Place("s1", "e0")]),
    ("neptune: a queued batch task does not jump a suspended one", neptune,
     snap([ex("e0", suspended=(batch("b0"),))], [batch("b1")]),
     [Resume("b0", "e0")]),
    ("neptune: prefers the executor with fewer suspended tasks", neptune,
     snap([ex("e0", running=batch("b0"), suspended=(batch("bx"),)),
           ex("e1", running=batch("b1"))], [stream("s1")]),
     [Suspend("b1", "e1"), Place("s1", "e1")]),
    ("neptune: avoids an executor under memory pressure", neptune,
     snap([ex("e0", running=batch("b0"), memory=(95, 100)),
           ex("e1", running=batch("b1"), memory=(10, 100))], [stream("s1")]),
     [Suspend("b1", "e1"), Place("s1", "e1")]),
    ("neptune: no suspension when every executor is over memory", neptune,
     snap([ex("e0", running=batch("b0"), memory=(95, 100))], [stream("s1")]), []),
    ("neptune: starvation guard protects a task suspended most of its life", neptune,
     snap([ex("e0", running=batch("b0", suspensions=3, resumed_at=9.9, started_at=5.0,
                                   suspended_s=3.0))], [stream("s1")]), []),
    ("neptune: a task suspended often but briefly is not starving", neptune,
     snap([ex("e0", running=batch("b0", suspensions=50, resumed_at=9.9, started_at=5.0,
                                   suspended_s=0.5))], [stream("s1")]),
     [Suspend("b0", "e0"), Place("s1", "e0")]),
    ("neptune: guard expires after its window", neptune,
     snap([ex("e0", running=batch("b0", suspensions=3, resumed_at=9.0, started_at=5.0,
                                   suspended_s=3.0))], [stream("s1")]),
     [Suspend("b0", "e0"), Place("s1", "e0")]),
    ("neptune: never preempts a stream task for a stream task", neptune,
     snap([ex("e0", running=stream("s0"))], [stream("s1")]), []),
    ("neptune: two stream tasks, two victims", neptune,
     snap([ex("e0", running=batch("b0")), ex("e1", running=batch("b1"))],
          [stream("s1", ready=1.0), stream("s2", ready=2.0)]),
     [Suspend("b0", "e0"), Place("s1", "e0"), Suspend("b1", "e1"), Place("s2", "e1")]),
]


@pytest.mark.parametrize(("name", "policy", "snapshot", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_policy_decisions(name: str, policy: object, snapshot: Snapshot,
                          expected: list[object]) -> None:
    assert policy(snapshot) == expected  # type: ignore[operator]


def test_max_suspended_per_executor_bounds_memory() -> None:
    held = tuple(batch(f"h{i}") for i in range(2))
    snapshot = snap([ex("e0", running=batch("b0"), suspended=held)], [stream("s1")])
    assert neptune(snapshot, NeptuneConfig(max_suspended=2)) == []
    assert neptune(snapshot, NeptuneConfig(max_suspended=3))[0] == Suspend("b0", "e0")


def test_get_policy_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown policy 'lifo'"):
        get_policy("lifo")


def test_policies_are_pure() -> None:
    snapshot = snap([ex("e0", running=batch("b0"))], [stream("s1")])
    assert neptune(snapshot) == neptune(snapshot)
    assert snapshot.executors[0].running == batch("b0")


def _spec_neptune(snapshot: Snapshot) -> list[object]:
    """neptune() as its docstring states it, one linear search per task: the oracle for the
    optimised implementation (which sorts victims once per call)."""
    config = NeptuneConfig()
    decisions: list[object] = []
    busy: set[str] = set()

    def local(e: ExecutorView, task: TaskView) -> bool:
        return (task.job, task.partition) in e.partitions

    def protected(task: TaskView) -> bool:
        return (snapshot.now - task.resumed_at < config.guard_seconds and task.suspended_s
                > config.starving_share * (snapshot.now - task.started_at))

    for task in sorted(snapshot.queue, key=lambda t: (-t.priority, t.ready_at)):
        idle = [e for e in snapshot.executors if e.running is None and e.id not in busy
                and all(s.priority < task.priority for s in e.suspended)
                and task.pinned in (None, e.id)]
        if idle:
            best = min(idle, key=lambda e: (not local(e, task), len(e.suspended),
                                            e.memory_pressure))
            decisions.append(Place(task.id, best.id))
            busy.add(best.id)
            continue
        victims = [e for e in snapshot.executors
                   if e.running is not None and e.id not in busy
                   and e.running.priority < task.priority
                   and len(e.suspended) < config.max_suspended
                   and e.memory_pressure < config.memory_high and not protected(e.running)
                   and task.pinned in (None, e.id)]
        if not victims:
            if task.pinned is not None:
                continue  # only its own executor would do; others may still place
            break
        best = min(victims, key=lambda e: (len(e.suspended), not local(e, task),
                                           e.memory_pressure, e.running.priority))  # type: ignore[union-attr]
        decisions += [Suspend(best.running.id, best.id), Place(task.id, best.id)]  # type: ignore[union-attr]
        busy.add(best.id)
    for e in snapshot.executors:
        if e.id not in busy and e.running is None and e.suspended:
            top = min(e.suspended, key=lambda t: (-t.priority, t.ready_at))
            decisions.append(Resume(top.id, e.id))
    return decisions


def _random_snapshot(rng: random.Random) -> Snapshot:
    def task(tid: str, pinned: str | None = None) -> TaskView:
        return TaskView(tid, rng.choice(("score", "train")), rng.choice(("stream", "batch")),
                        rng.choice((0, 5, 10)), rng.random(), rng.randint(-1, 3),
                        rng.randint(0, 9), rng.uniform(9.0, 10.0), rng.uniform(0.0, 9.0),
                        rng.uniform(0.0, 9.0), pinned)

    executors = [ExecutorView(
        f"e{i}", task(f"r{i}") if rng.random() < 0.8 else None,
        tuple(task(f"s{i}.{k}") for k in range(rng.choice((0, 0, 1, 2, 4)))),
        rng.randint(0, 100), rng.choice((0, 100)),
        frozenset((rng.choice(("score", "train")), rng.randint(-1, 3))
                  for _ in range(rng.randint(0, 3))))
        for i in range(rng.randint(1, 12))]
    pins = [None, None, None, *(e.id for e in executors[:3])]
    return snap(executors, [task(f"q{j}", rng.choice(pins)) for j in range(rng.randint(0, 6))])


def test_neptune_matches_its_specification_on_random_snapshots() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        snapshot = _random_snapshot(rng)
        assert neptune(snapshot) == _spec_neptune(snapshot), snapshot


@pytest.mark.parametrize("name", list(POLICIES))
def test_a_pinned_task_runs_only_on_its_executor(name: str) -> None:
    pinned = TaskView("k1", "agg", "stream", 10, 0.0, 2, pinned="e1")
    # e0 idle, e1 busy with a batch task: the pinned task may not take e0
    snapshot = snap([ex("e0"), ex("e1", running=batch("b1"))], [pinned, stream("s2")])
    decisions = POLICIES[name].decide(snapshot)
    placed = {d.task: d.executor for d in decisions if isinstance(d, Place)}
    assert placed.get("k1") in (None, "e1")
    assert placed.get("s2") == "e0", "an unpinned task still takes the idle executor"
    if POLICIES[name].preempts != "none":
        assert placed.get("k1") == "e1", "it preempts its own executor's batch task"
