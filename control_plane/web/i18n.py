"""Gettext catalogs for the console: parse .po, compile .mo (a tiny msgfmt), pick a language.

Run ``python -m control_plane.web update`` after adding strings (it appends the new
msgids to every catalog), translate them in the .po files, then ``... compile`` and commit
both the .po and the .mo. ``... check`` lists what is still untranslated.
"""

from __future__ import annotations

import argparse
import ast
import gettext
import re
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from jinja2.ext import extract_from_ast

PACKAGE_DIR = Path(__file__).resolve().parent.parent
LOCALE_DIR = PACKAGE_DIR / "locale"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
DOMAIN = "difronte"
LANGUAGES = ("it", "en")
DEFAULT_LANGUAGE = "it"

# The gettext function names a message may be marked with, in templates and in Python.
_KEYWORDS = frozenset({"_", "N_", "gettext", "ngettext"})
_PLURAL_KEYWORDS = frozenset({"ngettext"})


def N_(msgid: str) -> str:  # the conventional gettext "mark only" name
    """Mark ``msgid`` for extraction without translating it yet (nav labels, module constants)."""
    return msgid


# --- .po files ---------------------------------------------------------------------------


@dataclass
class PoEntry:
    """One message of a .po file."""

    msgid: str
    msgid_plural: str = ""
    msgstr: dict[int, str] = field(default_factory=dict)
    msgctxt: str | None = None
    fuzzy: bool = False

    @property
    def key(self) -> str:
        """The lookup key in the compiled catalog (context and plural included)."""
        base = self.msgid if not self.msgid_plural else f"{self.msgid}\0{self.msgid_plural}"
        return base if self.msgctxt is None else f"{self.msgctxt}\x04{base}"

    @property
    def translated(self) -> bool:
        """True when every form has a non-empty translation (and it is not fuzzy)."""
        return bool(self.msgstr) and all(self.msgstr.values()) and not self.fuzzy


class PoSyntaxError(ValueError):
    """A .po file could not be parsed; the message names the file and line."""


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b"}
_KEYWORD_LINE = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")\s*$')


def _unquote(text: str, where: str) -> str:
    if len(text) < 2 or not text.startswith('"') or not text.endswith('"'):
        raise PoSyntaxError(f"{where}: expected a quoted string, got {text!r}")
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise PoSyntaxError(f"{where}: unknown escape \\{nxt}")
            out.append(_ESCAPES[nxt])
            i += 2
        elif ch == '"':
            raise PoSyntaxError(f"{where}: unescaped quote inside a string")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_po(text: str, *, filename: str = "<po>") -> list[PoEntry]:
    """The entries of a .po file, the header (msgid "") included."""
    entries: list[PoEntry] = []
    current: PoEntry | None = None
    field_name: str | None = None
    plural_index = 0
    fuzzy_next = False

    def finish() -> None:
        nonlocal current
        if current is not None:
            entries.append(current)
        current = None

    for lineno, raw in enumerate(text.splitlines(), start=1):
        where = f"{filename}:{lineno}"
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            # A comment after a complete entry starts the next one.
            if current is not None and current.msgstr:
                finish()
            if line.startswith("#,") and "fuzzy" in [f.strip() for f in line[2:].split(",")]:
                fuzzy_next = True
            continue
        if line.startswith('"'):
            if current is None or field_name is None:
                raise PoSyntaxError(f"{where}: string continuation outside an entry")
            value = _unquote(line, where)
            if field_name == "msgctxt":
                current.msgctxt = (current.msgctxt or "") + value
            elif field_name == "msgid":
                current.msgid += value
            elif field_name == "msgid_plural":
                current.msgid_plural += value
            else:
                current.msgstr[plural_index] += value
            continue
        match = _KEYWORD_LINE.match(line)
        if match is None:
            raise PoSyntaxError(f"{where}: cannot parse {line!r}")
        keyword, index, quoted = match.group(1), match.group(2), match.group(3)
        value = _unquote(quoted, where)
        if keyword in ("msgctxt", "msgid"):
            if current is not None and (current.msgstr or keyword == "msgctxt"):
                finish()
            if current is None:
                current = PoEntry(msgid="", fuzzy=fuzzy_next)
                fuzzy_next = False
            if keyword == "msgctxt":
                current.msgctxt = value
            else:
                current.msgid = value
        elif current is None:
            raise PoSyntaxError(f"{where}: {keyword} before msgid")
        elif keyword == "msgid_plural":
            current.msgid_plural = value
        else:
            plural_index = int(index) if index is not None else 0
            current.msgstr[plural_index] = value
        field_name = keyword.split("[")[0]
    finish()
    return entries


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    if "\n" not in escaped or (escaped.endswith("\n") and escaped.count("\n") == 1):
        return '"' + escaped.replace("\n", "\\n") + '"'
    # Multi-line strings are written one line per source line, as msgmerge does.
    parts = escaped.split("\n")
    lines = [p + "\\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return '""\n' + "\n".join(f'"{p}"' for p in lines)


def format_entry(entry: PoEntry, *, comments: Iterable[str] = ()) -> str:
    """One entry in .po syntax, ready to append to a catalog."""
    lines = [f"#: {c}" for c in comments]
    if entry.msgctxt is not None:
        lines.append(f"msgctxt {_quote(entry.msgctxt)}")
    lines.append(f"msgid {_quote(entry.msgid)}")
    if entry.msgid_plural:
        lines.append(f"msgid_plural {_quote(entry.msgid_plural)}")
        for i in sorted(entry.msgstr) or [0, 1]:
            lines.append(f"msgstr[{i}] {_quote(entry.msgstr.get(i, ''))}")
    else:
        lines.append(f"msgstr {_quote(entry.msgstr.get(0, ''))}")
    return "\n".join(lines) + "\n"


# --- .mo files ---------------------------------------------------------------------------

_MO_MAGIC = 0x950412DE


def compile_mo(entries: Iterable[PoEntry]) -> bytes:
    """The GNU .mo bytes for ``entries`` (what ``msgfmt`` writes, without the hash table).

    Untranslated and fuzzy entries are left out, as msgfmt does, so gettext falls back to
    the msgid instead of showing an empty string. The header (msgid "") is always kept.
    """
    pairs: dict[str, str] = {}
    for entry in entries:
        if entry.msgid == "" and entry.msgctxt is None:
            pairs[""] = entry.msgstr.get(0, "")
            continue
        if not entry.translated:
            continue
        value = "\0".join(entry.msgstr[i] for i in sorted(entry.msgstr))
        pairs[entry.key] = value
    keys = sorted(pairs)  # gettext binary-searches the originals, so they must be sorted
    originals = [k.encode() for k in keys]
    translations = [pairs[k].encode() for k in keys]
    count = len(keys)
    header_size = 7 * 4
    originals_table = header_size
    translations_table = originals_table + count * 8
    data_start = translations_table + count * 8
    table: list[int] = []
    blob = bytearray()
    for strings in (originals, translations):
        for s in strings:
            table.extend((len(s), data_start + len(blob)))
            blob += s + b"\0"
    header = struct.pack(
        "<7I", _MO_MAGIC, 0, count, originals_table, translations_table, 0, data_start
    )
    return header + struct.pack(f"<{len(table)}I", *table) + bytes(blob)


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """Where the .po catalog of ``lang`` lives."""
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalog(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """Compile ``lang``'s .po next to it as .mo; returns the .mo path."""
    src = po_path(lang, locale_dir)
    entries = parse_po(src.read_text(encoding="utf-8"), filename=str(src))
    dest = src.with_suffix(".mo")
    dest.write_bytes(compile_mo(entries))
    return dest


def load_translations(lang: str, locale_dir: Path = LOCALE_DIR) -> gettext.GNUTranslations:
    """The compiled catalog of ``lang``; a clear error if it was never compiled."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang: {lang!r} is not one of {', '.join(LANGUAGES)}")
    mo = po_path(lang, locale_dir).with_suffix(".mo")
    if not mo.is_file():
        raise FileNotFoundError(
            f"{mo}: missing; run 'python -m control_plane.web compile' and commit it"
        )
    with mo.open("rb") as fp:
        return gettext.GNUTranslations(fp)


# --- choosing a language -----------------------------------------------------------------


def _base_language(tag: str | None) -> str | None:
    if not tag:
        return None
    base = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
    return base if base in LANGUAGES else None


def parse_accept_language(header: str) -> list[str]:
    """The supported languages in ``header``, most preferred first (q=0 means "not this")."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        match = re.search(r"q\s*=\s*([^;\s]*)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0  # a q-value we cannot read: treat the language as refused
            if not 0.0 <= quality <= 1.0:  # also false for NaN
                quality = 0.0
        lang = _base_language(tag)
        if lang is not None and quality > 0:
            ranked.append((-quality, position, lang))
    seen: list[str] = []
    for _, _, lang in sorted(ranked):
        if lang not in seen:
            seen.append(lang)
    return seen


def negotiate(
    user_locale: str | None = None, cookie: str | None = None, accept_language: str | None = None
) -> str:
    """The person's locale, else the ``lang`` cookie, else Accept-Language, else Italian."""
    for candidate in (_base_language(user_locale), _base_language(cookie)):
        if candidate is not None:
            return candidate
    preferred = parse_accept_language(accept_language or "")
    return preferred[0] if preferred else DEFAULT_LANGUAGE


# --- extraction --------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A translatable string found in the sources."""

    msgid: str
    msgid_plural: str = ""

    @property
    def key(self) -> str:
        """The catalog key, as in :attr:`PoEntry.key`."""
        return self.msgid if not self.msgid_plural else f"{self.msgid}\0{self.msgid_plural}"


def _template_environment() -> jinja2.Environment:
    return jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)


def extract_from_template(source: str) -> Iterator[Message]:
    """Messages in a Jinja2 template: ``_()``, ``gettext()``, ``ngettext()`` and trans blocks."""
    tree = _template_environment().parse(source)
    for _lineno, func, args in extract_from_ast(tree, tuple(_KEYWORDS)):
        strings = [a for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, str)]
        if not strings:
            continue
        if func in _PLURAL_KEYWORDS and len(strings) >= 2:
            yield Message(strings[0], strings[1])
        else:
            yield Message(strings[0])


def extract_from_python(source: str, *, filename: str = "<python>") -> Iterator[Message]:
    """Messages marked in Python: calls to ``_``/``N_``/``gettext`` with literal strings."""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (
            func.id
            if isinstance(func, ast.Name)
            else func.attr
            if isinstance(func, ast.Attribute)
            else None
        )
        if name not in _KEYWORDS:
            continue
        literals = [
            a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        if not literals or not isinstance(node.args[0], ast.Constant):
            continue
        if name in _PLURAL_KEYWORDS and len(literals) >= 2:
            yield Message(literals[0], literals[1])
        else:
            yield Message(literals[0])


def collect_messages(
    templates_dir: Path = TEMPLATES_DIR, python_root: Path = PACKAGE_DIR
) -> dict[Message, list[str]]:
    """Every translatable message in the templates and the package, with where it appears."""
    found: dict[Message, list[str]] = {}
    for path in sorted(templates_dir.rglob("*.html")):
        for message in extract_from_template(path.read_text(encoding="utf-8")):
            found.setdefault(message, []).append(str(path.relative_to(PACKAGE_DIR.parent)))
    for path in sorted(python_root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        for message in extract_from_python(source, filename=str(path)):
            found.setdefault(message, []).append(str(path.relative_to(PACKAGE_DIR.parent)))
    return found


def missing_translations(lang: str, locale_dir: Path = LOCALE_DIR) -> list[Message]:
    """Messages used in the sources that ``lang``'s .po does not translate."""
    src = po_path(lang, locale_dir)
    entries = {e.key: e for e in parse_po(src.read_text(encoding="utf-8"), filename=str(src))}
    return [m for m in collect_messages() if m.key not in entries or not entries[m.key].translated]


def add_missing(lang: str, locale_dir: Path = LOCALE_DIR) -> int:
    """Append source messages missing from ``lang``'s .po, untranslated; returns how many."""
    src = po_path(lang, locale_dir)
    text = src.read_text(encoding="utf-8")
    known = {e.key for e in parse_po(text, filename=str(src))}
    new = [(m, where) for m, where in collect_messages().items() if m.key not in known]
    if new:
        chunks = [
            format_entry(PoEntry(m.msgid, m.msgid_plural), comments=sorted(set(where))[:3])
            for m, where in new
        ]
        src.write_text(text.rstrip("\n") + "\n\n" + "\n".join(chunks), encoding="utf-8")
    return len(new)


def main(argv: list[str] | None = None) -> int:
    """``update`` | ``compile`` | ``check`` the console catalogs."""
    parser = argparse.ArgumentParser(prog="python -m control_plane.web")
    parser.add_argument("command", choices=["update", "compile", "check"])
    args = parser.parse_args(argv)
    status = 0
    for lang in LANGUAGES:
        if args.command == "update":
            print(f"{lang}: {add_missing(lang)} new messages")
        elif args.command == "compile":
            print(f"{lang}: wrote {compile_catalog(lang)}")
        else:
            missing = missing_translations(lang)
            for message in missing:
                print(f"{lang}: untranslated {message.msgid!r}")
            status |= bool(missing)
    return status


if __name__ == "__main__":
    sys.exit(main())
