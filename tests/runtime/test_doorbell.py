"""The shared-memory doorbell with real files and mappings, and the driver's rehearsal socket."""

from __future__ import annotations

import os
import shutil

from neptune_runtime import hotpath
from neptune_runtime.doorbell import Bell, Ringer


def test_a_driver_rings_the_bell_it_was_offered() -> None:
    bell = Bell()
    try:
        check = bell.checker()
        ringer = Ringer.attach(bell.path, bell.token)
        assert ringer is not None
        bell.unlink()  # the mapping outlives the name: nothing is left in /dev/shm
        assert not os.path.exists(bell.path)
        assert not check()
        ringer.ring()
        assert check()
        bell.clear()
        assert not check()
        ringer.close()
    finally:
        bell.close()


def test_a_bell_that_is_not_the_offered_one_is_not_attached(tmp_path: os.PathLike[str]) -> None:
    bell = Bell()
    try:
        assert Ringer.attach(bell.path, b"x" * len(bell.token)) is None  # another executor's
        assert Ringer.attach(bell.path + "-gone", bell.token) is None  # another host's
        assert Ringer.attach(bell.path, bell.path) is None  # not even a token
        # a file outside the bell directory is never opened, whatever its name and content
        foreign = os.path.join(str(tmp_path), os.path.basename(bell.path))
        shutil.copy(bell.path, foreign)
        assert Ringer.attach(foreign, bell.token) is None
    finally:
        bell.close()
    assert not os.path.exists(bell.path)


def test_the_rehearsal_sends_through_the_kernel_and_nothing_piles_up() -> None:
    rehearsal = hotpath.Rehearsal()
    try:
        for _ in range(2000):  # far more than a socket buffer, were the frames left unread
            rehearsal.run()
        assert rehearsal.runs == 2000
    finally:
        rehearsal.close()
