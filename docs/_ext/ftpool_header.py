"""Sphinx extension: the C API reference, generated from include/ftpool.h.

The header is the engine's documentation: every public declaration carries
a comment, above it or after it on the same line, and section banners group
them.  The ``ftpool-header`` directive turns that header into objects of
Sphinx's C domain, in the header's order and under its banners, so that the
reference cannot drift from the header.  It warns (an error under ``-W``)
about a declaration without a comment, a declaration it cannot render, a
public name of the header that ends up on no object, and a comment that
names something the header does not declare.

Usage in a MyST page (the path is relative to the page)::

    ```{ftpool-header} ../../include/ftpool.h
    ```
"""
import os
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

PUBLIC = re.compile(r"\b(?:ftpool|FTPOOL)_\w+")
# Macros that only decorate declarations; they are not part of a signature.
DECORATORS = ("FTPOOL_API",)


# --------------------------------------------------------------------------
# Reading the header
# --------------------------------------------------------------------------

def strip_preprocessor(lines):
    """Blanks every preprocessor line and every conditional block except the
    include guard, keeping line numbers.  Conditional blocks in a public
    header configure the build (export attributes, C++ linkage); they declare
    nothing a user calls."""
    out = []
    depth = 0           # nesting of skipped conditional blocks
    kept = 0            # open conditional blocks that are kept (the guard)
    for i, line in enumerate(lines):
        s = line.strip()
        if not s.startswith("#"):
            out.append("" if depth else line)
            continue
        directive = s[1:].split()[0] if s[1:].split() else ""
        if directive in ("if", "ifdef", "ifndef"):
            if (not depth and not kept and directive == "ifndef"
                    and i + 1 < len(lines)
                    and lines[i + 1].split()[:2]
                    == ["#define", s.split()[1]]):
                kept += 1
            else:
                depth += 1
        elif directive == "endif":
            if depth:
                depth -= 1
            else:
                kept -= 1
        out.append("")
    return out


class Item:
    """A comment or a statement (up to its ';' or ',' at brace depth 0)."""

    def __init__(self, kind, text, first, last):
        self.kind, self.text, self.first, self.last = kind, text, first, last

    def __repr__(self):
        return "Item(%s, %r, %d-%d)" % (self.kind, self.text[:30],
                                        self.first, self.last)


def scan(text, first_line, sep):
    """Splits C text into comments and statements ending with `sep`."""
    items = []
    i, n, line = 0, len(text), first_line
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("/*", i):
            end = text.index("*/", i) + 2
            body = text[i:end]
            items.append(Item("comment", body, line,
                              line + body.count("\n")))
            line += body.count("\n")
            i = end
        else:
            start, start_line, depth = i, line, 0
            while i < n:
                if text.startswith("/*", i):
                    if depth == 0:
                        break   # a comment after the last member
                    end = text.index("*/", i) + 2
                    line += text.count("\n", i, end)
                    i = end
                    continue
                c = text[i]
                if c == "\n":
                    line += 1
                elif c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                elif c == sep and depth == 0:
                    i += 1
                    break
                i += 1
            body = text[start:i].strip()
            if body.endswith(sep):
                body = body[:-1].rstrip()
            if body:
                items.append(Item("code", body, start_line,
                                  start_line + text[start:i].rstrip()
                                  .count("\n")))
    return items


def comment_text(raw):
    """The text of a /* */ comment, its leading stars and common indent
    removed."""
    body = raw[2:-2]
    lines = body.split("\n")
    out = [lines[0].strip()]
    rest = []
    for ln in lines[1:]:
        m = re.match(r"\s*\* ?(.*)$", ln)
        rest.append(m.group(1) if m else ln)
    indents = [len(x) - len(x.lstrip()) for x in rest if x.strip()]
    cut = min(indents) if indents else 0
    # A comment without leading stars continues its first line.
    if rest and not any(re.match(r"\s*\*", ln) for ln in lines[1:]):
        out[0] = " ".join([out[0]] + [x.strip() for x in rest]).strip()
        return out[0]
    out += [x[cut:].rstrip() for x in rest]
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return "\n".join(out)


def is_banner(item):
    return (item.kind == "comment"
            and re.fullmatch(r"/\*\s*-{10,}\s*\*/", item.text) is not None)


class Entry:
    """Statements with the comment that documents them."""

    def __init__(self, codes, doc):
        self.codes, self.doc = codes, doc


def attach(items):
    """Pairs comments with statements.  A comment that ends on the line
    before a statement documents it and every statement that follows
    without a blank line; a comment that starts on the line a statement
    ends documents that statement.  Returns entries, section titles (str)
    and free comments (Entry without codes), in order."""
    out = []
    i = 0
    while i < len(items):
        it = items[i]
        if is_banner(it):
            if (i + 2 < len(items) and items[i + 1].kind == "comment"
                    and is_banner(items[i + 2])):
                out.append(comment_text(items[i + 1].text))
                i += 3
            else:
                i += 1
            continue
        if it.kind == "comment":
            nxt = items[i + 1] if i + 1 < len(items) else None
            if nxt is not None and nxt.kind == "code" \
                    and nxt.first == it.last + 1:
                entry = Entry([nxt], comment_text(it.text))
                i += 2
                while (i < len(items) and items[i].kind == "code"
                       and items[i].first == entry.codes[-1].last + 1):
                    entry.codes.append(items[i])
                    i += 1
                out.append(entry)
            else:
                out.append(Entry([], comment_text(it.text)))
                i += 1
            # A trailing comment on the group's last line adds to its doc.
            if (out and isinstance(out[-1], Entry) and out[-1].codes
                    and i < len(items) and items[i].kind == "comment"
                    and items[i].first == out[-1].codes[-1].last
                    and not is_banner(items[i])):
                out[-1].doc += "\n\n" + comment_text(items[i].text)
                i += 1
            continue
        entry = Entry([it], "")
        i += 1
        if (i < len(items) and items[i].kind == "comment"
                and items[i].first == it.last and not is_banner(items[i])):
            entry.doc = comment_text(items[i].text)
            i += 1
        out.append(entry)
    return out


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

def squash(code):
    for d in DECORATORS:
        code = re.sub(r"\b%s\b" % d, "", code)
    return re.sub(r"\s+", " ", code).strip()


def split_braces(code):
    """'head { body } tail' -> (head, body, tail, line offset of body)."""
    a = code.index("{")
    b = code.rindex("}")
    return (code[:a].strip(), code[a + 1:b], code[b + 1:].strip(),
            code[:a + 1].count("\n"))


class Renderer:
    def __init__(self):
        self.names = {}         # declared name -> C role
        self.tags = set()       # struct tags of opaque types
        self.problems = []      # (line, message)
        self.mentioned = set()  # names written in comments

    # Text of comments: reST with cross-references to declared names.
    def text(self, doc, indent):
        """A comment as reST; an indented block after a line that ends
        with ':' becomes a literal block."""
        out = []
        lines = doc.split("\n")
        literal = False
        for k, ln in enumerate(lines):
            if literal and (ln.startswith("    ") or not ln.strip()):
                out.append(ln)
                continue
            literal = False
            nxt = lines[k + 1] if k + 1 < len(lines) else ""
            if ln.rstrip().endswith(":") and nxt.startswith("    "):
                out.append(self.inline(ln.rstrip()) + ":")
                out.append("")
                literal = True
                continue
            out.append(self.inline(ln))
        pad = " " * indent
        return "\n".join(pad + x if x.strip() else "" for x in out)

    def inline(self, s):
        """One line of a comment as reST: `x` is code, a public name is a
        cross-reference, *word* stays emphasis, the rest is escaped."""
        segs = []       # (is_markup, text)
        pos = 0
        pattern = re.compile(r"`([^`]+)`|(?<!\w)((?:ftpool|FTPOOL)_\w*)(\*?)"
                             r"(\.\w+)?(\([^()`]*\))?"
                             r"|(?<![\w*])\*(\w[\w ]*\w|\w)\*(?![\w*])")
        for m in pattern.finditer(s):
            segs.append((False, self.escape(s[pos:m.start()])))
            pos = m.end()
            if m.group(1) is not None:
                segs.append((True, "``%s``" % m.group(1)))
                continue
            if m.group(6) is not None:
                segs.append((True, "*%s*" % m.group(6)))
                continue
            name, star, member, call = m.group(2, 3, 4, 5)
            if star:
                segs.append((True, "``%s*``" % name))
                segs.append((False, self.escape((member or "")
                                                + (call or ""))))
                continue
            self.mentioned.add(name)
            role = self.names.get(name)
            if role is None:
                # Reported by check().
                segs.append((True, "``%s``" % name))
            elif member and role == "struct":
                segs.append((True, ":c:member:`%s%s`" % (name, member)))
                member = None
            elif role == "func" and call and call != "()":
                # A call with arguments: shown as written, linked.
                segs.append((True, ":c:func:`%s%s <%s>`"
                             % (name, call, name)))
                call = None
            else:
                segs.append((True, ":c:%s:`%s`" % (role, name)))
            tail = member or ""
            if call and role != "func":
                tail += call    # the function role shows "()" itself
            segs.append((False, self.escape(tail)))
        segs.append((False, self.escape(s[pos:])))
        # Inline markup must stand apart from the text around it; an
        # escaped space joins it to a neighbour without a visible space.
        out = []
        for k, (markup, text) in enumerate(segs):
            if not markup:
                out.append(text)
                continue
            before = "".join(out)[-1:]
            after = next((t for mk, t in segs[k + 1:] if t), "")[:1]
            if before and not before.isspace() and before not in "-:/'\"<([{":
                out.append("\\ ")
            out.append(text)
            if after and not after.isspace() \
                    and after not in "-.,:;!?\\/'\")]}>":
                out.append("\\ ")
        return "".join(out)

    @staticmethod
    def escape(s):
        s = s.replace("\\", "\\\\")
        for ch in "*`|":
            s = s.replace(ch, "\\" + ch)
        return re.sub(r"(\w)_(?=\W|$)", r"\1\\_", s)

    # Declarations.
    def declare(self, code):
        """(directive, signature, name, members) for one statement."""
        c = squash(code)
        if c.startswith("enum") and "{" in code:
            return ("enum", None, None, None)
        m = re.fullmatch(r"typedef struct (\w+) (\w+)", c)
        if m:
            self.tags.add(m.group(1))
            return ("type", m.group(2), m.group(2),
                    "typedef struct %s %s" % m.groups())
        m = re.fullmatch(r"typedef (.+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)", c)
        if m:
            return ("type", c[len("typedef "):], m.group(2), None)
        if c.startswith("typedef struct") and "{" in code:
            _, body, tail, off = split_braces(code)
            return ("struct", tail, tail, (body, off))
        m = re.fullmatch(r"(.+?)\b(\w+)\s*\((.*)\)", c)
        if m:
            return ("function", c, m.group(2), None)
        return (None, c, None, None)

    def render(self, text):
        lines = strip_preprocessor(text.split("\n"))
        items = scan("\n".join(lines), 1, ";")
        head = None
        if items and items[0].kind == "comment" and not is_banner(items[0]):
            head = comment_text(items.pop(0).text)
        entries = attach(items)
        # First pass: the names, so that comments can link to any of them.
        for e in entries:
            if isinstance(e, Entry):
                for code in e.codes:
                    self.collect(code)
        blocks = []     # (section title or None, reST)
        if head:
            blocks += self.render_head(head)
        title, rst = None, []
        for e in entries:
            if isinstance(e, str):
                if rst or title:
                    blocks.append((title, "\n".join(rst)))
                title, rst = e, []
            elif not e.codes:
                rst.append(self.text(e.doc, 0) + "\n")
            else:
                rst.append(self.render_entry(e))
        blocks.append((title, "\n".join(rst)))
        self.check(text)
        return blocks

    def render_head(self, head):
        """The header's opening comment: its first line is the file's
        title; 'Title' over a '-----' line starts a section."""
        lines = head.split("\n")
        blocks, title, body = [], None, []
        first = lines.pop(0)
        if " - " in first:
            tagline = first.split(" - ", 1)[1]
            body.append(tagline[:1].upper() + tagline[1:])
        for k, ln in enumerate(lines):
            if re.fullmatch(r"-{3,}", ln.strip()):
                continue
            if (k + 1 < len(lines)
                    and re.fullmatch(r"-{3,}", lines[k + 1].strip())):
                blocks.append((title, self.text("\n".join(body), 0)))
                title, body = ln.strip(), []
                continue
            body.append(ln)
        blocks.append((title, self.text("\n".join(body), 0)))
        return blocks

    def collect(self, code):
        kind, sig, name, extra = self.declare(code.text)
        if kind == "enum":
            for e in self.enum_entries(code):
                for c in e.codes:
                    self.names[c.text.split("=")[0].strip()] = "enumerator"
        elif kind == "type":
            self.names[name] = "type"
        elif kind == "struct":
            self.names[name] = "struct"
        elif kind == "function":
            self.names[name] = "func"

    def enum_entries(self, code):
        _, body, _, off = split_braces(code.text)
        return [e for e in attach(scan(body, code.first + off, ","))
                if isinstance(e, Entry)]

    def render_entry(self, e):
        out = []
        kinds = [self.declare(c.text) for c in e.codes]
        if not e.doc.strip():
            # An enum's comments may all be on its enumerators.
            for c, k in zip(e.codes, kinds):
                if k[0] != "enum":
                    self.problems.append((c.first, "no comment documents %s"
                                          % (k[2] or squash(c.text))))
        funcs = [k for k in kinds if k[0] == "function"]
        if len(funcs) == len(kinds):
            sigs = [k[1] for k in funcs]
            out.append(".. c:function:: " + ("\n" + " " * 16).join(sigs))
            out.append("")
            out.append(self.text(e.doc, 3))
            return "\n".join(out) + "\n"
        for c, (kind, sig, name, extra) in zip(e.codes, kinds):
            if kind == "enum":
                if e.doc.strip():
                    out.append(self.text(e.doc, 0) + "\n")
                for m in self.enum_entries(c):
                    for mc in m.codes:
                        out.append(".. c:enumerator:: " + squash(mc.text))
                    out.append("")
                    if not m.doc.strip():
                        self.problems.append(
                            (m.codes[0].first, "no comment documents %s"
                             % squash(m.codes[0].text)))
                    out.append(self.text(m.doc, 3) + "\n")
            elif kind == "type":
                out.append(".. c:type:: " + sig)
                out.append("")
                out.append(self.text(e.doc, 3))
                if extra:
                    out.append("")
                    out.append("   Declared as ``%s``." % extra)
                out.append("")
            elif kind == "struct":
                body, off = extra
                out.append(".. c:struct:: " + sig)
                out.append("")
                out.append(self.text(e.doc, 3) + "\n")
                for m in attach(scan(body, c.first + off, ";")):
                    if not isinstance(m, Entry):
                        continue
                    if not m.codes:
                        out.append(self.text(m.doc, 3) + "\n")
                        continue
                    sigs = [squash(mc.text) for mc in m.codes]
                    out.append("   .. c:member:: "
                               + ("\n" + " " * 18).join(sigs))
                    out.append("")
                    if not m.doc.strip():
                        self.problems.append(
                            (m.codes[0].first, "no comment documents %s"
                             % sigs[0]))
                    out.append(self.text(m.doc, 6) + "\n")
            else:
                self.problems.append((c.first, "cannot render: %s"
                                      % squash(c.text)))
        return "\n".join(out) + "\n"

    def check(self, text):
        """Every public name of the header's code is an object of the page
        (or the tag of an opaque type), and every name a comment mentions
        is declared."""
        lines = strip_preprocessor(text.split("\n"))
        code = re.sub(r"/\*.*?\*/", " ", "\n".join(lines), flags=re.S)
        for name in sorted(set(PUBLIC.findall(code)) - set(DECORATORS)):
            if name not in self.names and name not in self.tags:
                self.problems.append((0, "public name %s is on no object"
                                      % name))
        for name in sorted(self.mentioned - set(self.names) - self.tags):
            self.problems.append((0, "a comment mentions %s, which the "
                                  "header does not declare" % name))


def parse_rst(directive, rst):
    """Parses generated reST in a directive.  In a MyST page nested_parse
    reads Markdown, so the reST goes through MyST's eval-rst directive."""
    node = nodes.Element()
    text = rst
    if "myst" in type(directive.state).__module__:
        text = "````{eval-rst}\n%s\n````" % rst
    lines = StringList(text.split("\n"), source=directive.arguments[0])
    directive.state.nested_parse(lines, 0, node)
    return node.children


class FtpoolHeader(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self):
        rel = self.arguments[0]
        path = os.path.normpath(os.path.join(
            os.path.dirname(self.env.doc2path(self.env.docname)), rel))
        self.env.note_dependency(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        r = Renderer()
        blocks = r.render(text)
        for line, msg in r.problems:
            logger.warning("%s:%s: %s", rel, line, msg,
                           location=(self.env.docname, self.lineno))
        result = []
        for title, rst in blocks:
            content = parse_rst(self, rst)
            if title is None:
                result += content
                continue
            section = nodes.section()
            section += nodes.title(title, title)
            section += content
            name = nodes.fully_normalize_name(title)
            section["names"].append(name)
            self.state.document.note_implicit_target(section, section)
            result.append(section)
        return result


def setup(app):
    app.add_directive("ftpool-header", FtpoolHeader)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
