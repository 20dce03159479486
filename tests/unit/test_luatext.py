"""A script carries only the shared Lua definitions it uses (kubeq.store.luatext): the parts
are cut into their top-level statements, and a script keeps, in order, those its code names,
in turn those these name, and every one that defines nothing."""

from __future__ import annotations

import subprocess
import sys

from kubeq.store import luatext
from kubeq.store.scripts import LUA, NAMES, PARTS, part, source

PART = """-- the part's own header
-- of two lines
local _t = redis.call('TIME')
local NOW = tonumber(_t[1])
local A, B = 1, 2
-- says what used does
local function used(x)
  return A + x
end
local function unused()
  return 'used(' .. B  -- B and used named only in a string and a comment
end
local later
-- a statement that defines nothing
redis.call('PING')
later = function() return used(1) end
"""


def test_words_are_the_code_outside_comments_and_strings() -> None:
    text = """local a = 'b c' -- d e
f(g) --[[ h
h2 ]] i [==[ j ]] j2 ]==] "k\\"l" m
-- n"""
    assert luatext.words(text) == {"local", "a", "f", "g", "i", "m"}


def test_a_part_is_cut_into_its_statements_with_the_comments_above_them() -> None:
    got = luatext.statements(PART)
    assert [sorted(s.defines) for s in got] == [
        ["_t"], ["NOW"], ["A", "B"], ["used"], ["unused"], ["later"], [], ["later"],
    ]  # fmt: skip
    assert got[0].text == "-- the part's own header\n-- of two lines\nlocal _t = redis.call('TIME')"
    assert got[3].text == "-- says what used does\nlocal function used(x)\n  return A + x\nend"
    assert got[6].text == "-- a statement that defines nothing\nredis.call('PING')"
    assert "\n".join(s.text for s in got) + "\n" == PART
    assert got[4].names == {"local", "function", "unused", "return", "B", "end"}


def test_a_script_keeps_what_it_names_in_turn_and_in_order() -> None:
    parts = luatext.statements(PART)
    assert luatext.join(parts, "return NOW") == "\n".join(
        (parts[0].text, parts[1].text, parts[6].text, "return NOW")
    )
    kept = luatext.used(parts, "return later()")
    assert [sorted(s.defines) for s in kept] == [["A", "B"], ["used"], ["later"], [], ["later"]]
    assert luatext.used(parts, "return 'unused' -- NOW") == [parts[6]]


def test_every_statement_of_the_shared_parts_defines_a_name() -> None:
    """A line in the first column that is not a definition would be cut as a statement of its
    own (a continuation of the one above, say). The parts have none: a new top-level
    statement that defines nothing is kept in every script, so it should be rare."""
    for name in PARTS:
        cut = luatext.statements(part(name))
        assert all(s.defines for s in cut), [s.text[:60] for s in cut if not s.defines]
        assert "\n".join(s.text for s in cut) == part(name).rstrip("\n"), name


def test_each_script_carries_less_than_the_whole_parts_and_ends_with_its_own() -> None:
    whole = sum(len(part(p)) + 1 for p in PARTS)
    for name in NAMES:
        text = source(name)
        assert text.endswith("\n" + part(name)), name
        assert len(text) < whole + len(part(name)), name
        assert LUA[name].script == text
    assert len(source("heartbeat")) < whole / 3  # a small script carries a few helpers


def test_the_sha1s_are_taken_on_first_use_together_and_the_parts_let_go() -> None:
    """Importing the scripts joins no text; the first SHA1 read takes every script's, each
    the SHA1 of its full text, and the process then keeps no cut part nor file text (a
    NOSCRIPT reads them again). A fresh interpreter, so that no earlier test took them."""
    code = """
import hashlib
from kubeq.store import scripts
assert all(lua._sha is None for lua in scripts.LUA.values())
assert scripts._shared.cache_info().currsize == 0
sha = scripts.LUA["fetch"].sha
assert all(lua._sha is not None for lua in scripts.LUA.values())
assert scripts._shared.cache_info().currsize == 0 and scripts.part.cache_info().currsize == 0
for name, lua in scripts.LUA.items():
    assert lua.sha == hashlib.sha1(scripts.source(name).encode()).hexdigest(), name
assert sha == scripts.LUA["fetch"].sha
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
