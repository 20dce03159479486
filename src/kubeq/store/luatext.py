"""Joins a script with only the definitions of the shared Lua parts that it uses.

Redis runs a script's whole text at every call, so every helper of the shared parts a script
carries is a closure made again on each call, and its text is kept in Redis's script cache.
``join`` cuts the parts into their top-level statements and keeps, in order, those that
define a name the script's code names (and, in turn, those that these name), and every
statement that defines nothing. A statement's names are read from its first line (``local
function f``, ``local a, b = ...``, ``local a``, ``a = function``); a name counts as used
where it appears as a word outside comments and strings (a field ``t.name`` counts too: a
doubt keeps a definition rather than drop one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_CODE = re.compile(
    r"""--\[(=*)\[.*?\]\1\]"""  # a long comment
    r"""|--[^\n]*"""  # a comment to the end of its line
    r"""|\[(=*)\[.*?\]\2\]"""  # a long string
    r"""|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'"""  # a quoted string
    r"""|([A-Za-z_][A-Za-z0-9_]*)""",  # a word
    re.DOTALL,
)
_LOCAL_FUNCTION = re.compile(r"local\s+function\s+([A-Za-z_][A-Za-z0-9_]*)")
_LOCALS = re.compile(r"local\s+([A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*)")
_ASSIGNED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=[^=]")


@dataclass(frozen=True)
class Statement:
    """One top-level statement of a shared part, with the comment lines just above it."""

    text: str
    defines: frozenset[str]
    names: frozenset[str]


def words(text: str) -> frozenset[str]:
    """The words of Lua text outside its comments and strings: every name it may refer to."""
    return frozenset(m.group(3) for m in _CODE.finditer(text) if m.group(3))


def _defined(first: str) -> frozenset[str]:
    """The names a top-level statement defines, read from its first line."""
    if m := _LOCAL_FUNCTION.match(first):
        return frozenset({m.group(1)})
    if m := _LOCALS.match(first):
        return frozenset(n.strip() for n in m.group(1).split(","))
    if m := _ASSIGNED.match(first):
        return frozenset({m.group(1)})
    return frozenset()


def statements(text: str) -> list[Statement]:
    """A shared part cut into its top-level statements. A statement starts at a line that
    begins in the first column and is not a comment, a blank line or an ``end`` (the close
    of the one before); the comment lines right above it go with it (the part's header, with
    the first statement). Lines before those are left out."""
    lines = text.split("\n")
    starts = [
        i
        for i, line in enumerate(lines)
        if line[:1]
        and not line[0].isspace()
        and not line.startswith("--")
        and not re.match(r"end\b", line)
    ]
    heads = []
    for i in starts:
        head = i
        while head > 0 and lines[head - 1].startswith("--"):
            head -= 1
        heads.append(head)
    out = []
    for n, (head, i) in enumerate(zip(heads, starts, strict=True)):
        last = n + 1 == len(heads)
        body = "\n".join(lines[head : len(lines) if last else heads[n + 1]])
        body = body.rstrip("\n") if last else body
        out.append(Statement(body, _defined(lines[i]), words(body)))
    return out


def used(parts: Sequence[Statement], script: str) -> list[Statement]:
    """The statements a script needs, in their order: those defining a name the script
    names, those their own text names in turn, and every one that defines nothing."""
    defined = {n for s in parts for n in s.defines}
    wanted = set(words(script)) & defined
    kept: set[int] = set()
    grew = True
    while grew:
        grew = False
        for i, s in enumerate(parts):
            if i not in kept and (not s.defines or s.defines & wanted):
                kept.add(i)
                wanted |= s.names & defined
                grew = True
    return [s for i, s in enumerate(parts) if i in kept]


def join(parts: Sequence[Statement], script: str) -> str:
    """A script's full text: the shared parts' statements it uses (``statements`` of each
    part, in order), then its own text, joined by newlines."""
    return "\n".join((*(s.text for s in used(parts, script)), script))
