"""The compact id set of a day's entries: the answers a set of strings gives."""

from __future__ import annotations

import random

from hyperion_pipelines.index.id_set import IdCounter, IdSet, encode_ids


def ids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def test_membership_and_differences_match_python_sets() -> None:
    day, listed = ids(5000), ids(3000, seed=1)
    listed[:1000] = day[:1000]  # some listed ids are current, the rest are not
    current = IdSet(encode_ids(day[:2500]), encode_ids(day[2500:]))  # built from two parts
    assert len(current) == 5000 and day[42] in current and "nope" not in current and 7 not in current
    assert current.not_in(listed) == [i for i in listed if i not in set(day)]  # in the listed order
    found = IdSet.of(listed)
    assert found.difference(current) == sorted(set(listed) - set(day))
    assert current.difference(found) == sorted(set(day) - set(listed))


def test_ids_of_other_lengths_and_empty_sets() -> None:
    mixed = IdSet.of(["a", "abc", "ab"])
    assert mixed.not_in(["ab", "abcd", "", "a"]) == ["abcd", ""]
    empty = IdSet()
    assert len(empty) == 0 and empty.not_in(["x"]) == ["x"] and empty.difference(mixed) == []
    assert mixed.difference(empty) == ["a", "ab", "abc"] and empty.sample(3) == []


def test_the_sample_is_evenly_spread_over_the_sorted_ids_and_stable() -> None:
    day = ids(1000)
    ordered = sorted(day)
    assert IdSet.of(day).sample(10) == [ordered[i * 100] for i in range(10)]
    assert IdSet.of(reversed(day)).sample(10) == IdSet.of(day).sample(10)
    assert IdSet.of(day[:5]).sample(10) == sorted(day[:5])


def test_the_counter_finds_ids_listed_twice() -> None:
    counter = IdCounter()
    counter.add(["a", "b"])
    counter.add([])
    counter.add(["c", "a"])
    found, twice = counter.counted()
    assert counter.total == 4 and len(found) == 3 and twice == ["a"]
    assert IdCounter().counted()[1] == [] and len(IdCounter().counted()[0]) == 0
