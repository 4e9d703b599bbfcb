"""The package's prose survives formatting: no stranded docstring fragments, no exploded comments.

A mass re-wrap once cut every line longer than 100 columns at the limit and left the remainder on
a line of its own (``... share the same latent code,`` then a line with just ``two``), and
``ruff format`` split expressions whose trailing comment made the line too long
(``d = pairwise_distance(`` / ``queries, reference, distance`` / ``)  # (N, M): ...``).
Docstrings are rendered on the course site and regions of the source are printed in the
notebooks, so both reach the learner. The detectors below recognise the two signatures in
docstrings (string statements) and in blocks of full-line comments; each hit names file:line.

A **stranded fragment** is a short line -- at most 3 words and 25 characters, not reST structure
(field, bullet, directive, doctest, underline) -- cut from the *full* line above it: that line
had no room for the fragment's first word within 100 columns (which is why it was cut), and the
fragment keeps that line's indentation (a numpydoc ``name : type`` line after an indented
description sits further left). It is reported

* inside a paragraph, when the text goes on (the next line is not blank and not further left,
  which would start a new item): a hand-wrapped paragraph fills a line before it starts the next
  one, so a short line in the middle of one is the remainder of a cut line (the cut also turns a
  more indented next line into a block quote on the site);
* as the second and last line of a docstring's summary or of a comment's first paragraph: a
  one-line summary or comment cut at the limit (PEP 257: the summary fits on one line).

A short line that ends a later paragraph or an item is *not* reported: filled text often ends
on one, so it says nothing about how the text was wrapped.

A **formula cut** is a full line that ends inside the parentheses of function notation -- an
opening parenthesis right after a letter or digit (``log(2`` / ``pi).``, ``cos(m`` / ``theta)``),
not a prose parenthesis after a space -- closed on the next line.

An **exploded trailing comment** (found with :mod:`tokenize`) is a bracket opened at the end of
a line and closed alone on a later one, where the expression, written on one line without its
comment, fits in 100 columns -- so the comment alone made ruff split it -- and either

* the comment follows the closing bracket (``)  # ...``, however many lines ruff used), or
* the bracket holds a single line with one item and the comment (``X = (`` / ``20  # ...`` /
  ``)``); a magic trailing comma marks a hand-made list, whose comments describe its items.

The fix: the comment on its own line above, the expression back on one line.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dmlcourse"
SOURCES = sorted(PACKAGE.rglob("*.py"))

LINE_LENGTH = 100  # the project's ruff line-length
SHORT_WORDS, SHORT_CHARS = 3, 25
OPENERS, CLOSERS = "([{", ")]}"

# reST / numpydoc structure: a short line of this kind is not a fragment of prose
_STRUCTURE = re.compile(
    r"""^(
        [-=~^"'`+*#:.]{3,}$            # section underline, a banner's rule
      | [-*+•]\s                       # bullet
      | (\d+|\#|[a-z])[.)]\s           # enumerated item
      | \.\.\s                         # directive, comment, target
      | >>>|\.\.\.                     # doctest
      | :\w[^:]*:                      # field list
      | [\w*][\w, *]*\s:(\s|$)         # numpydoc "name : type"
    )""",
    re.X,
)
_RULE = re.compile(r"^[-=~^\"'`+*#:.]{3,}$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_short(text: str) -> bool:
    return len(text) <= SHORT_CHARS and len(text.split()) <= SHORT_WORDS


def _full(line: str, next_line: str) -> bool:
    """``line`` had no room for the first word of ``next_line`` within the line length."""
    words = next_line.split()
    return bool(words) and len(line.rstrip()) + 1 + len(words[0]) > LINE_LENGTH


def _open_call_paren(text: str) -> bool:
    """``text`` ends inside a parenthesis of function notation, ``log(2``."""
    stack = []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            stack.pop()
    return any(i > 0 and text[i - 1].isalnum() for i in stack)


def _closes_paren(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return True
    return False


def _text_blocks(source: str):
    """(first line number, raw lines, text lines, kind) for every docstring (a string statement)
    and every block of consecutive full-line comments at one column. The text of a line keeps
    the file's columns: quotes, string prefix and ``#`` are blanked out."""
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            raw = lines[node.lineno - 1 : node.end_lineno]
            text = list(raw)
            text[0] = re.sub(r"^(\s*)[rRuU]?(\"{3}|'{3}|\"|')", r"\1", text[0])
            text[-1] = re.sub(r"(\"{3}|'{3}|\"|')\s*$", "", text[-1])
            yield node.lineno, raw, text, "docstring"
    column = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
            column[tok.start[0]] = tok.start[1]
    blocks: list[list[int]] = []
    for n in sorted(column):
        if blocks and blocks[-1][-1] == n - 1 and column[blocks[-1][0]] == column[n]:
            blocks[-1].append(n)
        else:
            blocks.append([n])
    for block in blocks:
        raw = [lines[n - 1] for n in block]
        text = [ln[: column[n]] + " " + ln[column[n] + 1 :] for n, ln in zip(block, raw)]
        yield block[0], raw, [ln if ln.strip() else "" for ln in text], "comment"


def stranded_fragments(source: str) -> list[tuple[int, str]]:
    """(line number, what) for every stranded fragment or cut formula in ``source``'s docstrings
    and comments."""
    found = []
    for first, raw, text, kind in _text_blocks(source):
        words = raw if kind == "docstring" else text  # a closing quote is part of the last word
        for i, line in enumerate(text):
            body = line.strip()
            if not body:
                continue
            nxt = text[i + 1] if i + 1 < len(text) else ""
            # the paragraph goes on: a non-blank line follows, not further left (a new item)
            goes_on = bool(nxt.strip()) and _indent(nxt) >= _indent(line)
            if (
                i
                and _is_short(body)
                and not _STRUCTURE.match(body)
                and not _RULE.match(text[i - 1].strip())
                and _indent(text[i - 1]) == _indent(line)
                and _full(raw[i - 1], words[i])
            ):
                if goes_on:
                    found.append((first + i, f"stranded fragment {body!r} inside a paragraph"))
                    continue
                if i == 1 and not nxt.strip():
                    found.append((first + i, f"one-line {kind} cut, {body!r} left below it"))
                    continue
            if (
                nxt.strip()
                and _full(raw[i], words[i + 1])
                and _open_call_paren(body)
                and _closes_paren(nxt)
            ):
                found.append((first + i, f"formula cut inside its parentheses: {body[-20:]!r}"))
    return sorted(found)


def _one_line(lines: list[str]) -> str:
    """The bracketed expression of ``lines`` (from its opening line to its closing bracket)
    written on one line without its comments, as ruff format writes it when it fits."""
    first, *inner = [ln.split("  #")[0].rstrip() for ln in lines]
    joined = " ".join(ln.strip() for ln in inner[:-1]).rstrip(",")
    return first + joined + inner[-1].strip()


def exploded_comments(source: str) -> list[tuple[int, str]]:
    """(line number, what) for every expression that ruff format split because of its comment."""
    lines = source.splitlines()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    comments = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    last_code = {t.start[0]: t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)}
    found, stack = [], []
    for tok in tokens:
        if tok.type != tokenize.OP:
            continue
        if tok.string in OPENERS:
            stack.append(tok)
        elif tok.string in CLOSERS and stack:
            opener = stack.pop()
            o, c = opener.start[0], tok.start[0]
            if c == o or tok.line[: tok.start[1]].strip() or last_code[o] is not opener:
                continue  # not opened at a line's end and closed alone on a later line
            inside = [n for n in range(o + 1, c) if n in comments]
            fits = len(_one_line(lines[o - 1 : c])) <= LINE_LENGTH
            if c in comments and not inside and fits:
                found.append((c, f"{tok.string!r} then a comment; the expression fits on a line"))
            elif c - o == 2 and inside == [o + 1] and last_code[o + 1].string != "," and fits:
                found.append((o + 1, f"one item and its comment inside {opener.string!r}"))
    return sorted(found)


# --------------------------------------------------------------------------- the detectors

DAMAGED = textwrap.dedent(
    '''\
    """Probabilistic embeddings: the log-probability that two of the noisy inputs share one hidden
    variable,
    the two of them independent. The score adds a constant that does not depend on them: (D/2) log(2
    pi).
    """

    LAYOUTS = (
        "chain",
        "pca",
    )  # how the epochs' pictures are aligned (layouts.next_layout)
    STEPS = (
        20  # this many steps in a row (at most one epoch) without an active triplet end the run
    )


    def f(queries, reference, distance):
        """Indices of the nearest rows of ``reference`` for each query, nearest first, for the
        retrieval."""
        # a small network on a (shared) CPU: one thread is faster than two threads that wait for the
        # other one
        # and so on
        d = pairwise_distance(
            queries, reference, distance
        )  # (N, M): every query against every reference
        return d
    '''
)

CLEAN = textwrap.dedent(
    '''\
    """Probabilistic embeddings: the log-probability that two inputs share the same latent code.

    The score adds - (D/2) log(2 pi), a constant that does not depend on the pair; the first term
    (the attention term) weights confident dimensions more. Every metric is called as ``f(z,
    labels, reference=None)``; filled text can end on a short line, which this paragraph does at
    paragraph's end.

    Parameters
    ----------
    margin : float
        The margin of the hinge: a negative farther than the positive by this much is ignored.
    seed : int
        The seed.
    """

    # how the epochs' pictures are aligned (layouts.next_layout)
    LAYOUTS = ("chain", "procrustes", "pca")
    NAMES = [
        "a",  # the first
    ]
    # ----------------------------------------------------------------------------------------------
    # Batching
    # ----------------------------------------------------------------------------------------------


    def f(queries, reference, distance):
        """Indices (N, k) of the k nearest rows of ``reference`` for each query, nearest first."""
        # (N, M): every query against every reference
        d = pairwise_distance(queries, reference, distance)
        return some_function_with_a_long_name(
            d, reference, queries, distance=distance, exclude_self=True, largest=False
        )  # a call split for its own length, not for the comment
    '''
)


def test_the_detectors_find_the_damage():
    assert [n for n, _ in stranded_fragments(DAMAGED)] == [2, 3, 18, 20]
    assert [n for n, _ in exploded_comments(DAMAGED)] == [10, 12, 24]


def test_the_detectors_pass_clean_text():
    assert stranded_fragments(CLEAN) == []
    assert exploded_comments(CLEAN) == []


# --------------------------------------------------------------------------- the package


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_damaged_text(path):
    source = path.read_text(encoding="utf-8")
    name = path.relative_to(PACKAGE.parent)
    problems = [f"{name}:{n}: {what}" for n, what in stranded_fragments(source)]
    problems += [f"{name}:{n}: exploded comment, {what}" for n, what in exploded_comments(source)]
    assert not problems, "\n".join(problems)
