"""SentIds: a venue's memory of the client order ids it sent (never send one twice, flat memory)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.orders import SentIds

ids = st.one_of(
    st.builds(lambda run, n: f"{run}-{n}", st.sampled_from(["20261126T000000-abcdef", "run-b"]), st.integers(1, 40)),
    st.sampled_from(["c-1", "c-01", "x", "-3", "r-0", "r-", "r-٣"]),  # odd shapes go to the plain set
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ids, max_size=80))
def test_behaves_like_a_set(sequence):
    sent, plain = SentIds(), set()
    for cid in sequence:
        assert (cid in sent) == (cid in plain)
        sent.add(cid)
        plain.add(cid)
        assert cid in sent
    assert len(sent) == len(plain)
    for probe in ("20261126T000000-abcdef-41", "run-b-0", "c-1", "nope"):
        assert (probe in sent) == (probe in plain)


def test_sequential_ids_take_constant_memory():
    sent = SentIds()
    for n in range(1, 10_001):
        sent.add(f"20261126T000000-abcdef-{n}")
    assert len(sent) == 10_000 and not sent._other and sent._contiguous == {"20261126T000000-abcdef": 10_000}
    assert "20261126T000000-abcdef-1" in sent and "20261126T000000-abcdef-10001" not in sent
    sent.add("20261126T000000-abcdef-10003")  # a gap is remembered until it closes
    assert sent._other == {"20261126T000000-abcdef-10003"}
    sent.add("20261126T000000-abcdef-10001")
    assert sent._other == {"20261126T000000-abcdef-10003"} and sent._contiguous["20261126T000000-abcdef"] == 10_001
    sent.add("20261126T000000-abcdef-10002")
    assert not sent._other and sent._contiguous["20261126T000000-abcdef"] == 10_003
