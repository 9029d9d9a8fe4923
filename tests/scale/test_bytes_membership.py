"""The modules every port 25 message runs through test a bytes value for a substring with
find(), never with `in`: CPython 3.11's bytes `in` (_Py_bytes_contains) first reads the
needle as an integer, which raises and clears a TypeError, about 1,800 instructions a test;
callgrind counted 37 a message (parser, content filter, the header fields of each of the
three header reads, the spam rules), 1.1% of the message's instructions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOT_MODULES = (
    "protocols/smtp/parser.py",
    "protocols/smtp/syntax.py",
    "mailboxes/mime.py",
    "mailboxes/headers.py",
    "delivery/spam/builtin.py",
)
# Names of bytes constants these modules test for (GTUBE, the spam test string).
BYTES_CONSTANTS = {"GTUBE"}


def _bytes_membership(tree: ast.AST) -> list[int]:
    """Lines of `<bytes> in x` / `not in` where x is not a literal tuple, list or set."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            needle = (isinstance(left, ast.Constant) and isinstance(left.value, bytes)) or (
                isinstance(left, ast.Name) and left.id in BYTES_CONSTANTS
            )
            container = isinstance(right, ast.Tuple | ast.List | ast.Set)
            if isinstance(op, ast.In | ast.NotIn) and needle and not container:
                lines.append(node.lineno)
            left = right
    return lines


@pytest.mark.parametrize("path", HOT_MODULES)
def test_no_bytes_substring_test_with_in(path):
    tree = ast.parse((REPO / path).read_text(), filename=path)
    assert _bytes_membership(tree) == []


def test_the_check_finds_what_it_looks_for():
    source = 'a = b"x" in data\nb = GTUBE not in raw\nc = b"x" in (b"x", b"y")\nd = "s" in t\n'
    assert _bytes_membership(ast.parse(source)) == [1, 2]
