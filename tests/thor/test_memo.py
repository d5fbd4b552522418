"""thor.memo: the bounded memo the parsers, writers, client and gateway keep."""

from __future__ import annotations

from thor.memo import Memo


def test_memo_is_bounded_and_skips_unhashable_lists() -> None:
    memo: Memo[tuple[object, ...], str] = Memo(2)
    for i in range(5):
        key, known = memo.lookup_items([("n", str(i))])
        assert known is None
        assert key is not None
        memo.put(key, f"v{i}")
        assert len(memo) <= 2
    assert memo.lookup_items([("n", "4")]) == ((("n", "4"),), "v4")
    assert memo.get((("n", "4"),)) == "v4"
    assert memo.lookup_items([["n", "4"]]) == (None, None)
