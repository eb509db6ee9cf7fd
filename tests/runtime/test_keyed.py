"""Keyed state (pure): a task's writes stay apart until it succeeds, and are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from neptune_runtime.checkpoints import CheckpointStore
from neptune_runtime.keyed import CHUNK, Change, PartitionState, StateError

from .changes import load, pack, rows


def test_a_task_sees_its_writes_and_they_are_kept_only_when_it_succeeds() -> None:
    lane = PartitionState({"n": {"a": 1, "b": 2}})
    task = lane.begin()
    counts = task.view("n")
    counts["a"] = counts["a"] + 10
    del counts["b"]
    counts["c"] = 3
    assert dict(counts) == {"a": 11, "c": 3} and "b" not in counts and len(counts) == 2
    assert lane.maps["n"] == {"a": 1, "b": 2}, "nothing is kept before the task ends"
    assert rows(task.changes()) == [["n", "a", 11], ["n", "b", None], ["n", "c", 3]]
    task.commit()
    assert lane.maps["n"] == {"a": 11, "c": 3}
    failed = lane.begin()
    failed.view("n")["a"] = 0  # this task fails: its writes are never committed
    assert lane.begin().view("n")["a"] == 11


def test_many_changes_travel_as_several_packed_maps() -> None:
    task = PartitionState().begin()
    view = task.view("n")
    for i in range(2 * CHUNK + 1):
        view[i] = [i]
    changes = task.changes()
    assert [name for name, _ in changes] == ["n"] * 3
    assert rows(changes) == [["n", i, [i]] for i in range(2 * CHUNK + 1)]
    restored = PartitionState()
    restored.restore(changes)
    assert restored.maps == {"n": {i: [i] for i in range(2 * CHUNK + 1)}}


@pytest.mark.parametrize(("key", "value", "message"), [
    (("a", 1), 1, "key ('a', 1) is a tuple"),
    ("a", None, "None is not a value"),
])
def test_bad_keys_and_values_are_refused_at_once(key: object, value: object,
                                                 message: str) -> None:
    view = PartitionState().begin().view("n")
    with pytest.raises(StateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        view[key] = value  # type: ignore[index]


def test_a_value_that_cannot_be_stored_is_named_when_the_task_ends() -> None:
    task = PartitionState().begin()
    task.view("n")["k"] = {1, 2}
    with pytest.raises(StateError, match="keyed state 'n': the value for key 'k' cannot be"):
        task.changes()
    # among many storable ones, and a key that msgpack cannot hold (an int past 64 bits)
    task = PartitionState().begin()
    view = task.view("n")
    for i in range(1000):
        view[i] = [i]
    view[2**70] = 1
    with pytest.raises(StateError, match=r"the key for key 1180591620717411303424 cannot be"):
        task.changes()


def test_the_checkpoint_store_commits_state_and_tokens_together(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.commit({("j", 0): pack([["n", "a", 1], ["n", 7, [1, 2]]]),
                  ("j", 1): pack([["n", "a", 5]])}, {("j", 0): 10, ("j", 1): 3})
    store.commit({("j", 0): pack([["n", "a", None]])}, {("j", 0): 11})
    store.close()
    again = CheckpointStore(tmp_path)
    maps, tokens = load(again)
    assert maps == {("j", 0): {"n": {7: [1, 2]}}, ("j", 1): {"n": {"a": 5}}}
    assert tokens == {("j", 0): 11, ("j", 1): 3}
    # a pending checkpoint (exactly-once): applied only when settled as committed
    again.prepare({("j", 1): pack([["n", "a", 6]])}, {("j", 1): 4})
    assert load(again)[1][("j", 1)] == 3
    assert again.pending() == ({("j", 1): pack([["n", "a", 6]])}, {("j", 1): 4})
    again.settle(False)
    assert again.pending() is None and load(again)[1][("j", 1)] == 3
    again.prepare({("j", 1): pack([["n", "a", 6]])}, {("j", 1): 4})
    again.settle(True)
    maps, tokens = load(again)
    assert maps[("j", 1)] == {"n": {"a": 6}} and tokens[("j", 1)] == 4


def test_a_restore_applies_changes_in_order_removals_included() -> None:
    state = PartitionState({"n": {"a": 1}})
    state.restore(pack([["n", "a", None], ["m", "b", 2], ["m", "b", 3], ["n", "a", None]]))
    assert state.maps == {"n": {}, "m": {"b": 3}}
    with pytest.raises(ValueError, match="undecodable"):
        state.restore([["n", b"\xc1"]])


def test_a_stateless_upgrade_drops_the_checkpoints_a_restart_keeps_them(tmp_path: Path) -> None:
    from neptune_runtime.driver.core import upgrade

    def store_with_state() -> None:
        store = CheckpointStore(tmp_path)
        store.commit({("j", 0): pack([["n", "a", 1]])}, {("j", 0): 5})
        store.close()

    def state() -> dict[object, object]:
        store = CheckpointStore(tmp_path)
        try:
            return dict(load(store)[0])
        finally:
            store.close()

    upgrade(tmp_path, "stateless", "3")
    store_with_state()
    upgrade(tmp_path, "stateless", "3")  # the same generation: a restart
    assert state() == {("j", 0): {"n": {"a": 1}}}
    upgrade(tmp_path, "last-state", "4")  # an upgrade that keeps state
    assert state() == {("j", 0): {"n": {"a": 1}}}
    upgrade(tmp_path, "stateless", "5")  # an upgrade that does not
    assert state() == {}
    with pytest.raises(ValueError, match="upgrade mode must be one of"):
        upgrade(tmp_path, "sometimes", "6")


def test_checkpoint_rows_are_the_packed_job_partition_name_and_key(tmp_path: Path) -> None:
    """The batch builds its rows from packed prefixes: they must stay the documented
    b"s" + msgpack([job, partition, name, key]), which `load` reads back (and older stores
    hold)."""
    import msgpack

    keys: list[object] = ["k", 7, -3, 2**40, b"raw", 1.5, True]  # keyed.KEY_TYPES
    changes = {("job", 2): pack([["n", key, [1]] for key in keys] + [["m", "gone", None]])}
    store = CheckpointStore(tmp_path)
    store.commit(changes, {("job", 2): 9})
    rows = {bytes(k) for k, _ in store._rows(b"s")}  # the rows without their b"s"
    expected = {msgpack.packb(["job", 2, "n", key], use_bin_type=True) for key in keys}
    assert rows == expected
    maps, tokens = load(store)
    assert tokens == {("job", 2): 9}
    assert len(maps[("job", 2)]["n"]) == len(keys)



@pytest.mark.parametrize("base_keys", [3, 4 * CHUNK], ids=["into-a-smaller-state", "into-a-larger"])
def test_a_big_task_s_shipments_pack_every_change_then_merge_it(base_keys: int) -> None:
    """The task's map becomes the state when it is the larger (keyed.py says why), the state
    as it was until the last step, or merges into it."""
    lane = PartitionState({"n": {i: ["old", i] for i in range(base_keys)}, "m": {"x": 1}})
    before = {name: dict(values) for name, values in lane.maps.items()}
    task = lane.begin()
    view = task.view("n")
    for i in range(1, 3 * CHUNK):
        view[i] = ["new", i]
    del view[0]
    task.view("m")["y"] = 2
    steps = task.shipments()
    changes: list[Change] = []
    for step in steps:
        if step is None:
            break
        changes.append(step)
    assert rows(changes) == rows(task.changes()), "every change packed before any merge"
    if base_keys < 3 * CHUNK:
        assert lane.maps == before, "a step of the adoption made, the state is as it was"
    merges = 1 + sum(1 for _ in steps)
    expected = {"n": {**{i: ["old", i] for i in range(1, base_keys)},
                      **{i: ["new", i] for i in range(1, 3 * CHUNK)}}, "m": {"x": 1, "y": 2}}
    assert lane.maps == expected and merges >= 3, "a CHUNK a step"
    assert not task.views
