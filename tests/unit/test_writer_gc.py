"""The writer freezes what survives each collection; what it froze must still be collectable now and then."""

from __future__ import annotations

import gc
import weakref

from pvwatch.streams.writer import FrozenCollector


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_paused_writer_frees_cycles_that_died_after_they_were_frozen() -> None:
    node = Node()
    alive = weakref.ref(node)
    gc.collect()
    gc.freeze()  # as the writer's _freeze_survivors does after every collection
    try:
        del node
        gc.collect()
        assert alive() is not None, "a frozen cycle is out of every collection"
        collector = FrozenCollector(every_s=3600)
        assert not collector.collect_if_due()  # not yet due: nothing is collected
        assert alive() is not None
        collector.every_s = 0
        assert collector.collect_if_due()
        assert alive() is None
    finally:
        gc.unfreeze()
