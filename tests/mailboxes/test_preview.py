"""A preview's white space: the text's words joined by single spaces, cut at 256 characters,
read from the text's start when that holds enough of them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailboxes import preview

# Words and white space of every kind str.split() takes, in runs long enough that a prefix
# of the text may hold fewer than MAX_CHARS characters of words.
_PIECES = st.sampled_from(
    ["word", "a", "x" * 300, " ", "\t", "\r\n", "\u00a0", "\u2003", " " * 2000, "é", "\x0b"]
)


@given(st.lists(_PIECES, max_size=60).map("".join))
@settings(max_examples=500, deadline=None)
def test_collapsed_is_the_whole_text_split_and_joined(text: str) -> None:
    assert preview.collapsed(text) == " ".join(text.split())[: preview.MAX_CHARS]


def test_collapsed_reads_past_a_head_of_white_space() -> None:
    text = " " * 5000 + "late words"
    assert preview.collapsed(text) == "late words"
    word_cut_at_the_head = "w" * (preview._HEAD - 2) + " " + "y" * 400
    assert preview.collapsed(word_cut_at_the_head) == word_cut_at_the_head[: preview.MAX_CHARS]
