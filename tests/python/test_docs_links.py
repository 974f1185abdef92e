"""Every relative link of README.md resolves: the file exists in the
repository and, with an #anchor, the anchor is a heading of that Markdown
file (by GitHub's rule for heading anchors).  The checker is tested first
on made-up documents, so that a checker that finds nothing cannot pass."""
import os
import re

import pytest

from conftest import SOURCE as ROOT
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?"
                  r"(?:\s+\"[^\"]*\")?\s*\)")


def prose_lines(text):
    """The lines of a Markdown text outside fenced code blocks."""
    fenced = False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def slug(heading):
    """GitHub's anchor for a heading: the text without markup, lower case,
    without punctuation other than '-' and '_', spaces made '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text):
    """The anchors of a Markdown text's headings, duplicates numbered."""
    seen = {}
    out = set()
    for line in prose_lines(text):
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else "%s-%d" % (base, n))
    return out


def links(text):
    """The link targets of a Markdown text, outside code."""
    for line in prose_lines(text):
        line = re.sub(r"`[^`]*`", "", line)
        for m in LINK.finditer(line):
            yield m.group(1)


def broken_links(path):
    """(target, reason) for each relative link of `path` that does not
    resolve."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue    # http:, https:, mailto: ...
        file_part, _, anchor = target.partition("#")
        dest = (os.path.normpath(os.path.join(os.path.dirname(path),
                                              file_part))
                if file_part else path)
        if not os.path.exists(dest):
            out.append((target, "no such file"))
            continue
        if anchor:
            if not dest.endswith(".md"):
                out.append((target, "anchor into a file that is not "
                                    "Markdown"))
                continue
            with open(dest, encoding="utf-8") as f:
                if anchor not in anchors(f.read()):
                    out.append((target, "no such heading"))
    return out


def test_slug_follows_github():
    assert slug("Differences from fastthreadpool 1.7/1.8") \
        == "differences-from-fastthreadpool-1718"
    assert slug("`run_in_executor`") == "run_in_executor"
    assert slug("Where the original's \"up to 4x faster\" came from") \
        == "where-the-originals-up-to-4x-faster-came-from"
    assert slug("[Pool](x.md) and results") == "pool-and-results"


def test_checker_finds_broken_links(tmp_path):
    (tmp_path / "other.md").write_text("# Title\n\n## A part\n\n## A part\n")
    (tmp_path / "doc.md").write_text(
        "# Doc\n\n"
        "[ok](other.md) [ok](other.md#a-part) [ok](other.md#a-part-1)\n"
        "[ok](#doc) [ok](https://example.org/missing) ![ok](other.md)\n"
        "`[not a link](missing.md)`\n"
        "```\n[in a code block](missing.md)\n```\n"
        "[bad](missing.md) [bad](other.md#no-part) [bad](#nothing)\n")
    assert broken_links(str(tmp_path / "doc.md")) == [
        ("missing.md", "no such file"),
        ("other.md#no-part", "no such heading"),
        ("#nothing", "no such heading"),
    ]


def test_readme_has_links():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        targets = list(links(f.read()))
    # The README is the front page: it points into the documentation.
    assert any(t.startswith("docs/") for t in targets)


@pytest.mark.parametrize("name", ["README.md"])
def test_relative_links_resolve(name):
    assert broken_links(os.path.join(ROOT, name)) == []
