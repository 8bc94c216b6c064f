"""SRS config grammar: text -> a tree of Directive nodes with file:line.

The grammar is SRS's (SrsConfDirective::parse_conf / read_token, itself nginx's):
- A statement is `name arg...;` or `name arg... { statements }`. Words are separated by
  space, tab, CR or LF; newlines are otherwise free, so one statement may span lines.
- `;`, `{` and `}` are special only where a word may start; `;` and `{` also end a word
  (`listen 1935;`), `}` does not (`on}` is the word "on}", as in SRS).
- `"..."` and `'...'` quote a word (no escapes, may span lines); after the closing quote
  comes whitespace, `;` or `{`. A quote inside a word is an ordinary character.
- `#` where a word may start comments out the rest of the line.
- `include FILE...;` (at any level) parses each file and splices its directives in place.
  Each included file must be balanced on its own. A relative FILE is looked up as SRS
  does, relative to the working directory, and if no such file exists, relative to the
  including file's directory (nginx-like, so a config tree can be moved as a whole).
  Including a file that is already being parsed is an error (cycle).
Errors (ConfigError, FILE:LINE): `;` or `{` with no name, `}` with no open block, `}` or
end of file after words with no `;` (missing `;`), end of file inside a block (reported at
the line that opened it), unterminated quote (at the line it started), unreadable include.

Deviation: SRS drops empty quoted words (`""`); we keep them as "" so that
`hls_entry_prefix "";` means an empty value rather than a missing one.
"""

import os
from dataclasses import dataclass, field

from .errors import ConfigError

_SPACE = " \t\r\n"
_PUNCT = ";{}"


@dataclass(eq=False)
class Directive:
    """One statement: `name args;` or `name args { children }`."""
    name: str
    args: list = field(default_factory=list)
    children: list = field(default_factory=list)
    file: str = "<string>"
    line: int = 0
    block: bool = False     # written with { }, even if empty
    end_line: int = 0       # line of the last word: a multi-line statement hints at a missing ';'

    def get(self, name):
        """The first child called `name` (SRS's get()), or None."""
        for child in self.children:
            if child.name == name:
                return child
        return None

    def get_all(self, name):
        return [child for child in self.children if child.name == name]

    @property
    def arg0(self):
        return self.args[0] if self.args else ""

    def equals(self, other):
        """Same name, args and children, ignoring where they were written (for reload diffs)."""
        if other is None or self.name != other.name or self.args != other.args:
            return False
        if len(self.children) != len(other.children):
            return False
        return all(a.equals(b) for a, b in zip(self.children, other.children))

    def __repr__(self):
        kids = f" {{{len(self.children)}}}" if self.block else ""
        return f"<Directive {self.name} {self.args}{kids} {self.file}:{self.line}>"


def tokenize(text, file):
    """Yield (kind, text, line): kind is "word" or one of ; { }."""
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            line += ch == "\n"
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch in _PUNCT:
            yield ch, ch, line
            i += 1
        elif ch in "\"'":
            end = text.find(ch, i + 1)
            if end < 0:
                raise ConfigError(f"unterminated {ch} quote", file, line)
            yield "word", text[i + 1:end], line
            line += text.count("\n", i, end)
            i = end + 1
            if i < n and text[i] not in _SPACE and text[i] not in ";{":
                raise ConfigError(f"unexpected {text[i]!r} after quoted word", file, line)
        else:
            start = i
            while i < n and text[i] not in _SPACE and text[i] not in ";{":
                i += 1
            yield "word", text[start:i], line


def parse_string(text, file="<string>", _including=()):
    """Parse config text into a root Directive (name "root")."""
    root = Directive("root", file=file, line=0, block=True)
    _parse_into(root, text, file, _including)
    return root


def parse_file(path, _including=()):
    """Parse the config file at `path` (includes resolved) into a root Directive."""
    return parse_string(read_text(path), path, _including + (os.path.realpath(path),))


def read_text(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", path) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read: not UTF-8 text (byte {e.start})", path) from e


def _parse_into(root, text, file, including):
    stack = [root]
    words, first, last = [], 0, 0
    for kind, word, line in tokenize(text, file):
        if kind == "word":
            if not words:
                first = line
            words.append(word)
            last = line
            continue
        if kind == "}":
            if words:
                raise _missing_semicolon(words, file, last)
            if len(stack) == 1:
                raise ConfigError("unexpected '}'", file, line)
            stack.pop()
            continue
        if not words:
            raise ConfigError(f"unexpected {kind!r}", file, line)
        node = Directive(words[0], words[1:], file=file, line=first, end_line=last)
        words = []
        if node.name == "include":
            if kind == "{":
                raise ConfigError("include takes file names and ends with ';', not a block", file, first)
            _include(stack[-1], node, including)
            continue
        stack[-1].children.append(node)
        if kind == "{":
            node.block = True
            stack.append(node)
    if words:
        raise _missing_semicolon(words, file, last)
    if len(stack) > 1:
        opened = stack[-1]
        label = " ".join([opened.name] + opened.args)
        raise ConfigError(f"block '{label} {{' is not closed: end of file, expecting '}}'", file, opened.line)


def _missing_semicolon(words, file, line):
    return ConfigError(f"missing ';' after '{' '.join(words)}'", file, line)


def _include(parent, node, including):
    if not node.args:
        raise ConfigError("include needs at least one file", node.file, node.line, "include")
    for name in node.args:
        path = _resolve_include(name, node.file)
        if os.path.realpath(path) in including:
            raise ConfigError(f"include {name}: include cycle", node.file, node.line, "include")
        try:
            sub = parse_file(path, including)
        except ConfigError as e:
            if e.line is None:  # the included file itself could not be read
                raise ConfigError(f"include {name}: {e.message}", node.file, node.line, "include") from e
            raise
        parent.children.extend(sub.children)


def _resolve_include(name, including_file):
    if os.path.isabs(name) or os.path.exists(name):
        return name
    beside = os.path.join(os.path.dirname(including_file), name)
    return beside if os.path.exists(beside) else name
