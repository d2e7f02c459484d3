"""The live state's snapshot maps: every version reads as the dict it stands for, and an older
version a REST read still holds does not change when the worker makes the next one."""

from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.state.layered import GONE, Layered, LayeredSet

keys = st.integers(min_value=0, max_value=60)
change = st.dictionaries(keys, st.one_of(st.integers(), st.just(GONE)), max_size=25)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, st.integers(), max_size=30), st.lists(change, max_size=40))
def test_every_version_reads_as_its_dict_and_old_versions_stay(start, steps):
    version, model = Layered(start), dict(start)
    history = [(version, dict(model))]
    for changes in steps:
        version = version.updated(changes)
        for key, value in changes.items():
            if value is GONE:
                model.pop(key, None)
            else:
                model[key] = value
        history.append((version, dict(model)))
    for kept, expected in history:
        assert dict(kept) == expected
        assert len(kept) == len(expected)
        assert sorted(kept) == sorted(expected)
        for key in range(61):
            assert (key in kept) == (key in expected)
            assert kept.get(key, "none") == expected.get(key, "none")
        assert kept == expected


def test_many_small_versions_stay_a_few_layers_deep():
    version = Layered()
    for n in range(20_000):
        version = version.updated({n: n, n // 2: GONE} if n % 3 == 0 else {n: n})
    assert len(version._layers) <= 16  # noqa: SLF001 - a lookup reads at most this many dicts
    assert version.get(19_999) == 19_999 and 3 not in version and 2 in version  # 3 went at n = 6


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sets(keys, max_size=10), st.sets(keys, max_size=10)), max_size=30))
def test_sets_add_and_remove_like_frozensets(steps):
    version, model = LayeredSet(), set()
    for added, removed in steps:
        before, before_model = version, frozenset(model)
        version = version.updated(added, removed)
        model = (model - removed) | added
        assert version == frozenset(model) and len(version) == len(model)
        assert before == before_model  # the older version is as it was
