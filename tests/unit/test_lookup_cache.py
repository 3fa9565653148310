"""The router's look-up cache: which steps it serves, when a generation ends, and its bound."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.platform.lookup_cache import GONE, Entry, LookupCache, OldAnswer, serves
from app.platform.phases import MigrationState, Phase, Step

LOOKUP = MigrationState(old="a", new="b", phase=Phase.ROUTING, step=Step.LOOKUP, version=5)
DRAINING = replace(LOOKUP, phase=Phase.DRAINING, step=Step.NONE, version=6)
DRAINED = replace(DRAINING, phase=Phase.DRAINED, version=7)


@pytest.mark.parametrize(
    ("state", "served"),
    [
        (MigrationState(old="a"), False),
        (MigrationState(old="a", new="b", phase=Phase.DUAL), False),
        (replace(LOOKUP, step=Step.GUARD), False),
        (replace(LOOKUP, step=Step.CLAIM), False),
        (LOOKUP, True),
        (DRAINING, True),
        (DRAINED, True),
        (replace(LOOKUP, step=Step.BOTH_NEW), False),
        (replace(LOOKUP, step=Step.BOTH_OLD), False),
    ],
)
def test_only_steps_where_no_router_starts_on_old_are_served(
    state: MigrationState, served: bool
) -> None:
    assert serves(state) is served
    assert (LookupCache(10).generation_for(state) is not None) is served


def test_answers_carry_from_lookup_through_drained_one_version_at_a_time() -> None:
    cache = LookupCache(10)
    gen = cache.generation_for(LOOKUP)
    cache.put(gen, "x", GONE)
    cache.follow(LOOKUP, DRAINING)
    cache.follow(DRAINING, DRAINED)
    assert cache.get(cache.generation_for(DRAINED), "x") == GONE


@pytest.mark.parametrize(
    "after",
    [
        # An abort: both_new starts only on new, but both_old, next, starts on old again.
        replace(LOOKUP, step=Step.BOTH_NEW, version=6),
        # Roles swapped (the end of an abort): "gone from a" means nothing about b.
        replace(LOOKUP, old="b", new="a", version=6),
        # A jump over versions this router never saw (it was cut off meanwhile).
        replace(DRAINING, version=9),
        # Finished: single on the new cluster.
        MigrationState(old="b", version=8),
    ],
)
def test_any_other_view_change_drops_every_answer(after: MigrationState) -> None:
    cache = LookupCache(10)
    gen = cache.generation_for(LOOKUP)
    cache.put(gen, "x", GONE)
    cache.follow(DRAINED if after.version == 8 else LOOKUP, after)
    assert len(cache) == 0
    assert cache.get(cache.generation_for(after), "x") is None


def test_a_call_begun_before_a_change_neither_reads_nor_writes_the_new_generation() -> None:
    cache = LookupCache(10)
    stale = cache.generation_for(LOOKUP)
    both_new = replace(LOOKUP, step=Step.BOTH_NEW, version=6)
    cache.follow(LOOKUP, both_new)
    swapped = replace(LOOKUP, old="b", new="a", version=8)
    cache.follow(replace(both_new, step=Step.BOTH_OLD, version=7), swapped)
    # The call that looked under lookup finishes after the swap: its answer is dropped.
    cache.put(stale, "x", GONE)
    assert cache.get(cache.generation_for(swapped), "x") is None
    assert cache.get(stale, "x") is None


def test_the_cache_is_bounded_least_recently_used_first_and_size_zero_is_off() -> None:
    cache = LookupCache(2)
    gen = cache.generation_for(LOOKUP)
    done = Entry(OldAnswer.SUCCEEDED, "run-1")
    cache.put(gen, "x", GONE)
    cache.put(gen, "y", done)
    assert cache.get(gen, "x") == GONE  # x is now the most recently used
    cache.put(gen, "z", GONE)
    assert (cache.get(gen, "y"), cache.get(gen, "x"), len(cache)) == (None, GONE, 2)
    off = LookupCache(0)
    assert off.generation_for(LOOKUP) is None
    with pytest.raises(ValueError, match="cache size -1"):
        LookupCache(-1)
