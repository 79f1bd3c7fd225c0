"""The catalogs: the tiny msgfmt, language choice, completeness, and formatting in words."""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from control_plane.web.formatting import Formatter
from control_plane.web.i18n import (
    LANGUAGES,
    Message,
    PoSyntaxError,
    collect_messages,
    compile_mo,
    extract_from_python,
    extract_from_template,
    format_entry,
    load_translations,
    negotiate,
    parse_accept_language,
    parse_po,
    po_path,
)

HEADER = (
    'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
    '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n'
)


def _gnu(po_text: str) -> gettext.GNUTranslations:
    return gettext.GNUTranslations(io.BytesIO(compile_mo(parse_po(po_text))))


def test_compiled_catalog_is_read_by_gettext() -> None:
    po = HEADER + (
        '\n#: somewhere.html\nmsgid "Online"\nmsgstr "In linea"\n'
        '\nmsgid "%(num)d minute ago"\nmsgid_plural "%(num)d minutes ago"\n'
        'msgstr[0] "%(num)d minuto fa"\nmsgstr[1] "%(num)d minuti fa"\n'
        '\nmsgctxt "button"\nmsgid "Open"\nmsgstr "Apri"\n'
        '\nmsgid ""\n"two "\n"lines"\nmsgstr "due "\n"righe \\"citate\\"\\n"\n'
    )
    t = _gnu(po)
    assert t.gettext("Online") == "In linea"
    assert t.ngettext("%(num)d minute ago", "%(num)d minutes ago", 1) == "%(num)d minuto fa"
    assert t.ngettext("%(num)d minute ago", "%(num)d minutes ago", 3) == "%(num)d minuti fa"
    assert t.pgettext("button", "Open") == "Apri"
    assert t.gettext("two lines") == 'due righe "citate"\n'
    assert t.info()["plural-forms"].startswith("nplurals=2")


def test_untranslated_and_fuzzy_entries_fall_back_to_the_msgid() -> None:
    po = HEADER + '\nmsgid "Empty"\nmsgstr ""\n\n#, fuzzy\nmsgid "Guess"\nmsgstr "Forse"\n'
    entries = parse_po(po)
    assert [e.fuzzy for e in entries if e.msgid] == [False, True]
    t = _gnu(po)
    assert t.gettext("Empty") == "Empty"
    assert t.gettext("Guess") == "Guess"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('msgid "a"\nmsgstr "b\n', "<po>:2"),
        ('msgstr "b"\n', "<po>:1"),
        ('msgid "a"\nmsgstr "\\q"\n', "<po>:2"),
        ('"orphan"\n', "<po>:1"),
        ("msgid a\n", "<po>:1"),
    ],
)
def test_po_syntax_errors_name_the_line(text: str, where: str) -> None:
    with pytest.raises(PoSyntaxError, match=where):
        parse_po(text)


def test_format_entry_round_trips() -> None:
    entry = parse_po('msgid "Say \\"hi\\"\\n"\nmsgstr "Di\' \\"ciao\\"\\n"\n')[0]
    again = parse_po(format_entry(entry, comments=["x.html"]))[0]
    assert (again.msgid, again.msgstr) == ('Say "hi"\n', {0: 'Di\' "ciao"\n'})


def test_extraction_finds_calls_trans_blocks_and_plurals() -> None:
    template = (
        '{{ _("Hello") }} {{ gettext("World") }} {{ _(variable) }}'
        "{% trans name=user %}Hi {{ name }}{% endtrans %}"
        '{{ ngettext("%(num)d cat", "%(num)d cats", n) }}'
    )
    found = set(extract_from_template(template))
    assert found == {
        Message("Hello"),
        Message("World"),
        Message("Hi %(name)s"),
        Message("%(num)d cat", "%(num)d cats"),
    }
    python = 'N_("Label")\nx = _("Text")\nt.ngettext("a", "b", 2)\n_(name)\nother("no")\n'
    assert set(extract_from_python(python)) == {
        Message("Label"),
        Message("Text"),
        Message("a", "b"),
    }


# The console's own sources: the layout, the login, home and fleet pages, and the web package.
_CORE = ("control_plane/web/", "control_plane/templates/fleet/")


def _is_core(where: str) -> bool:
    top_level_template = where.startswith("control_plane/templates/") and where.count("/") == 2
    return where.startswith(_CORE) or top_level_template


@functools.cache
def _messages() -> dict[Message, list[str]]:
    # Parsing every template and module takes a while; once per run is enough.
    return collect_messages()


def _untranslated(lang: str, *, core_only: bool) -> list[str]:
    entries = {e.key: e for e in parse_po(po_path(lang).read_text(encoding="utf-8"))}
    missing = []
    for message, where in _messages().items():
        if core_only and not any(_is_core(w) for w in where):
            continue
        if message.key not in entries or not entries[message.key].translated:
            missing.append(f"{message.msgid!r} (used in {', '.join(sorted(set(where)))})")
    return missing


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_console_message_is_translated(lang: str) -> None:
    assert len(_messages()) > 50  # the extractor really looked
    missing = _untranslated(lang, core_only=True)
    assert not missing, f"untranslated in {lang}: " + "; ".join(missing)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_feature_message_is_translated(lang: str) -> None:
    # Feature pages (workshop, marketplace, ...) mark their strings the same way; an Italian
    # user must never meet an English sentence.
    missing = _untranslated(lang, core_only=False)
    assert not missing, (
        f"untranslated in {lang} (run 'python -m control_plane.web update', translate the new "
        f"entries in control_plane/locale/*/LC_MESSAGES/difronte.po, then "
        f"'python -m control_plane.web compile'): " + "; ".join(missing)
    )


@pytest.mark.parametrize("lang", LANGUAGES)
def test_committed_mo_matches_the_po(lang: str) -> None:
    po = po_path(lang)
    mo = po.with_suffix(".mo")
    assert mo.read_bytes() == compile_mo(parse_po(po.read_text(encoding="utf-8"))), (
        f"{mo} is stale: run 'python -m control_plane.web compile'"
    )


def test_italian_catalog_really_is_italian() -> None:
    t = load_translations("it")
    assert t.gettext("You do not have access to this page.") == "Non hai accesso a questa pagina."
    assert t.ngettext("%(num)d minute ago", "%(num)d minutes ago", 3) % {"num": 3} == "3 minuti fa"


def test_missing_catalog_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="compile"):
        load_translations("it", tmp_path)
    with pytest.raises(ValueError, match="lang"):
        load_translations("fr")


@pytest.mark.parametrize(
    ("user", "cookie", "header", "expected"),
    [
        (None, None, None, "it"),
        (None, None, "fr-FR,de;q=0.8", "it"),
        (None, None, "en-GB,en;q=0.9,it;q=0.8", "en"),
        (None, None, "de, it;q=0.5, en;q=0.7", "en"),
        (None, None, "en;q=0, it", "it"),
        (None, "en", "it-IT", "en"),
        ("it", "en", "en", "it"),
        ("en_GB", None, None, "en"),
        ("xx", "zz", "en", "en"),
    ],
)
def test_language_choice(
    user: str | None, cookie: str | None, header: str | None, expected: str
) -> None:
    assert negotiate(user, cookie, header) == expected


def test_accept_language_ignores_garbage() -> None:
    assert parse_accept_language("it;q=abc, ;;, en") == ["en"]


# --- formatting ----------------------------------------------------------------------------

NOW = dt.datetime(2025, 3, 12, 13, 5, tzinfo=dt.UTC)


def _fmt(lang: str) -> Formatter:
    return Formatter(load_translations(lang), lang, now=NOW, tz=ZoneInfo("Europe/Rome"))


@pytest.mark.parametrize(
    ("seconds_ago", "italian", "english"),
    [
        (10, "adesso", "just now"),
        (-30, "adesso", "just now"),
        (60, "1 minuto fa", "1 minute ago"),
        (3 * 60, "3 minuti fa", "3 minutes ago"),
        (2 * 3600, "2 ore fa", "2 hours ago"),
        (30 * 3600, "ieri", "yesterday"),
        (5 * 86400, "5 giorni fa", "5 days ago"),
    ],
)
def test_ago_in_words(seconds_ago: float, italian: str, english: str) -> None:
    when = NOW - dt.timedelta(seconds=seconds_ago)
    assert _fmt("it").ago(when) == italian
    assert _fmt("en").ago(when) == english


def test_never_seen() -> None:
    assert _fmt("it").ago(None) == "mai"
    assert _fmt("en").datetime(None) == "never"


def test_dates_are_local_time_day_first_in_italian() -> None:
    assert _fmt("it").datetime(NOW) == "12/03/2025 14:05"  # CET is UTC+1 in March
    assert _fmt("en").datetime(NOW) == "2025-03-12 14:05"


def test_numbers_and_sizes_follow_the_language() -> None:
    assert _fmt("it").number(1234.5, 1) == "1.234,5"
    assert _fmt("en").number(1234.5, 1) == "1,234.5"
    assert _fmt("it").size(1_500_000_000) == "1,5 GB"
    assert _fmt("en").size(512) == "512 B"


@pytest.mark.parametrize(
    ("key", "value", "label", "text"),
    [
        ("cpu.percent", 42.4, "Processore in uso", "42 %"),
        ("mem.total_bytes", 4e9, "Memoria", "4,0 GB"),
        ("temp.max_c", 61.2, "Temperatura più alta", "61 °C"),
        ("ntp.synced", 1.0, "Orologio sincronizzato", "sì"),
        ("uptime_s", 3 * 86400 + 5, "Acceso da", "3 giorni"),
        ("disk.root.used_pct", 80.0, "Spazio su disco usato (root)", "80 %"),
        ("rtc.drift_s", -2.25, "Scarto dell'orologio", "-2,2 s"),
        ("custom.thing", 3.0, "custom.thing", "3"),
        ("custom.ratio", float("nan"), "custom.ratio", "—"),
    ],
)
def test_metrics_in_plain_words(key: str, value: float, label: str, text: str) -> None:
    fmt = _fmt("it")
    assert (fmt.metric_label(key), fmt.metric_value(key, value)) == (label, text)
