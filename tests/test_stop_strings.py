"""StopMatcher: whatever the chunking, the released text is the stream up to its earliest stop."""

from __future__ import annotations

import random

import pytest

from axllm.stop_strings import StopMatcher


def reference(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The text before the earliest stop occurrence (ties: shortest stop) and that stop."""
    found = [(text.find(s), len(s), s) for s in stops if s in text]
    if not found:
        return text, None
    start, _, stop = min(found)
    return text[:start], stop


def random_chunks(text: str, rng: random.Random, max_size: int) -> list[str]:
    chunks, i = [], 0
    while i < len(text):
        size = rng.randint(0, max_size)  # empty chunks included
        chunks.append(text[i : i + size])
        i += size
    return chunks


def run(stops: list[str], chunks: list[str]) -> tuple[str, str | None]:
    """Feed ``chunks``; checks the holding invariants after every push and returns
    (all released text, matched stop)."""
    matcher = StopMatcher(stops)
    full = "".join(chunks)
    expected, _ = reference(full, stops)
    released, seen = "", ""
    for chunk in chunks:
        seen += chunk
        out, stop = matcher.push(chunk)
        released += out
        # Nothing at or after the earliest stop is ever released.
        assert expected.startswith(released), (stops, chunks, released)
        if stop is not None:
            assert matcher.matched == stop
            return released, stop
        # Only a proper prefix of some stop may be held back, and nothing else.
        assert seen.startswith(released)
        held = seen[len(released) :]
        assert held == "" or any(s.startswith(held) and s != held for s in stops), (stops, chunks, held)
    released += matcher.flush()
    assert expected.startswith(released)
    return released, matcher.matched


ALPHABET = ["a", "b", "c", "é", "日", "😀", " ", "\n"]


@pytest.mark.parametrize("seed", range(6))
def test_random_texts_stops_and_chunkings_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    matched = unmatched = 0
    for _ in range(600):
        stops = [
            "".join(rng.choices(ALPHABET[: rng.randint(2, len(ALPHABET))], k=rng.randint(1, 6)))
            for _ in range(rng.randint(1, 4))
        ]
        text = "".join(rng.choices(ALPHABET, k=rng.randint(0, 40)))
        expected = reference(text, stops)
        got = run(stops, random_chunks(text, rng, rng.choice([1, 2, 3, 8])))
        assert got == expected, (stops, text)
        if expected[1] is None:
            unmatched += 1
        else:
            matched += 1
    # The generator must exercise both outcomes.
    assert matched > 100 and unmatched > 100


@pytest.mark.parametrize("stops", [["ab", "b"], ["b", "ab"]])
def test_overlapping_stops_earliest_start_wins(stops: list[str]) -> None:
    for chunks in (["xab"], ["x", "a", "b"], ["xa", "b"]):
        assert run(stops, chunks) == ("x", "ab")
    assert run(stops, ["xb"]) == ("x", "b")


def test_equal_start_reports_the_shortest_stop_regardless_of_chunking() -> None:
    for chunks in (["abc"], ["a", "b", "c"], ["ab", "c"]):
        assert run(["abc", "ab"], chunks) == ("", "ab")
        assert run(["abc", "ab"], ["x", *chunks]) == ("x", "ab")


def test_a_later_complete_stop_waits_while_an_earlier_one_may_still_arrive() -> None:
    matcher = StopMatcher(["abcd", "c"])
    assert matcher.push("abc") == ("", None)
    assert matcher.push("d") == ("", "abcd")

    matcher = StopMatcher(["abcd", "c"])
    assert matcher.push("abc") == ("", None)
    assert matcher.push("x") == ("ab", "c")

    matcher = StopMatcher(["abcd", "c"])
    assert matcher.push("zabc") == ("z", None)
    assert matcher.flush() == "ab"
    assert matcher.matched == "c"


def test_stop_longer_than_chunks_is_held_then_released_when_it_breaks() -> None:
    matcher = StopMatcher(["</answer>"])
    released = [matcher.push(c)[0] for c in "42</answ"]
    assert "".join(released) == "42"
    assert matcher.push("e")[0] == ""
    assert matcher.push("X") == ("</answeX", None)
    for c in "</answer":
        assert matcher.push(c) == ("", None)
    assert matcher.push(">tail") == ("", "</answer>")


def test_multibyte_stop_split_across_chunks() -> None:
    assert run(["日本"], ["こんにちは日", "本語"]) == ("こんにちは", "日本")
    assert run(["😀!"], ["a😀", "b😀", "!c"]) == ("a😀b", "😀!")
    assert run(["😀!"], ["a😀", "b😀"]) == ("a😀b😀", None)


def test_no_stops_passes_text_through() -> None:
    matcher = StopMatcher([])
    assert matcher.push("anything") == ("anything", None)
    assert matcher.flush() == ""
    assert matcher.matched is None


def test_duplicates_are_fine() -> None:
    assert run(["x", "x", "yz", "yz"], ["ay", "zx"]) == ("a", "yz")


def test_stream_end_rules() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.push("fooEN") == ("foo", None)
    assert matcher.flush() == "EN"
    assert matcher.flush() == ""
    with pytest.raises(RuntimeError, match="flushed"):
        matcher.push("more")

    matcher = StopMatcher(["END"])
    assert matcher.push("fooENDbar") == ("foo", "END")
    with pytest.raises(RuntimeError, match="'END' matched"):
        matcher.push("x")
    assert matcher.flush() == ""


@pytest.mark.parametrize("stops", [[""], ["ok", ""]])
def test_empty_stop_rejected(stops: list[str]) -> None:
    with pytest.raises(ValueError, match=r"stops\[\d\] is empty"):
        StopMatcher(stops)


def test_bad_types_rejected() -> None:
    with pytest.raises(TypeError, match="single string"):
        StopMatcher("stop")
    with pytest.raises(TypeError, match=r"stops\[1\]"):
        StopMatcher(["a", 3])
    with pytest.raises(TypeError, match="text must be a str"):
        StopMatcher(["a"]).push(b"a")


def test_memory_is_linear_in_the_stop_length() -> None:
    """A 200 000-character stop string costs memory in proportion to its length (the matcher once
    stored every prefix: quadratic, 822 MB for 40 000 characters)."""
    import tracemalloc

    stop = "ab" * 100_000
    tracemalloc.start()
    try:
        m = StopMatcher([stop, "zz"])
        out, matched = m.push("x" + stop[:-1])
        assert (out, matched) == ("x", None)  # all but the first character may still be the stop
        out, matched = m.push("b" + "tail")
        assert (out, matched) == ("", stop)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * len(stop), peak
