"""Check template sets before they send anything: `dunning templates check`.

Every template (a ``<lang>/<name>.subject.txt`` defines one) is rendered in
all five kinds, for each locale of its language, against sample contexts that
cover the awkward cases (one invoice; optional fields empty; three overdue
invoices with fees and interest), and the three-invoice letter is also turned
into a PDF (once per language: layout hardly depends on the number format). Problems name the set, the file, the line where known and the
locale; ``error`` means a customer would get a broken or no document,
``warning`` means it goes out but probably not as intended.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from jinja2 import TemplateNotFound
from jinja2.exceptions import TemplateSyntaxError, UndefinedError

from pipeline.delivery.render.samples import sample_context
from pipeline.delivery.render.formatting import parse_locale
from pipeline.delivery.render.templates import FALLBACK_LANGUAGE, SMS_MAX, SMS_SEGMENT, TemplateSet, sms_text

KINDS = ("subject.txt", "txt", "html", "sms.txt", "letter.html")
# Sample locales per language folder: same words, different number and date formats.
LOCALES = ["de_DE", "de_AT", "en_GB", "en_US", "fr_FR", "fr_BE", "nl_NL", "nl_BE", "da_DK"]
_LANG_DIR_RE = re.compile(r"^[a-z]{2,3}$")
_TEMPLATE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # as TemplateSet accepts
_SUBJECT = ".subject.txt"


@dataclass(frozen=True)
class Problem:
    template_set: str
    file: str  # inside the set, e.g. "de/reminder.txt"
    locale: str  # the locale rendered, or the language folder for file-level problems
    message: str
    severity: str = "error"  # "error" | "warning"
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.template_set}/{self.file}" + (f" line {self.line}" if self.line else "")
        return f"{self.severity}: {where} ({self.locale}): {self.message}"


def list_templates(root: Path, sets: list[str] | None = None) -> list[tuple[str, str, str]]:
    """``(set, language, template)`` for every template a language folder defines or inherits."""
    out = []
    for set_name in _set_names(Path(root), sets):
        folder = Path(root) / set_name
        if not folder.is_dir():
            continue
        langs = _languages(folder)
        names = sorted({f.name[: -len(_SUBJECT)] for lang in langs for f in (folder / lang).glob(f"*{_SUBJECT}")})
        out += [(set_name, lang, name) for lang in langs for name in names]
    return out


def check_templates(root: Path, sets: list[str] | None = None) -> list[Problem]:
    """Every problem of the template sets under ``root`` (all, or the named ones), errors first."""
    root = Path(root)
    if not root.is_dir():
        return [Problem("", "", "", f"template folder not found: {root}")]
    problems: list[Problem] = []
    renderer = None
    for set_name in _set_names(root, sets):
        try:
            templates = TemplateSet(root, set_name)
        except (ValueError, FileNotFoundError):
            problems.append(Problem(set_name, "", "", f"template set not found in {root}"))
            continue
        if renderer is None:
            from pipeline.delivery.render.pdf import LetterRenderer  # imports WeasyPrint: only when needed

            renderer = LetterRenderer(root)  # one for all sets: fonts parsed once, CSS once per set
        problems += _check_set(templates, renderer)
    # The same mistake shows for every locale and context: report it once.
    unique: dict[tuple, Problem] = {}
    for p in problems:
        unique.setdefault((p.template_set, p.file, p.line, p.severity, p.message), p)
    return sorted(unique.values(), key=lambda p: p.severity != "error")


def _set_names(root: Path, sets: list[str] | None) -> list[str]:
    if sets or not root.is_dir():
        return list(sets or [])
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _languages(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _LANG_DIR_RE.match(p.name))


def _locales(lang: str) -> list[str]:
    return [loc for loc in LOCALES if loc.split("_")[0] == lang] or [lang]


def _contexts(set_name: str, locale: str, template: str) -> list[dict[str, Any]]:
    """One invoice; optional fields None (two invoices, a fee); three invoices, fees and interest (last)."""
    ctxs = [sample_context(i, locale=locale, template=template) for i in range(3)]
    ctxs[1]["customer"].update(address_line2=None, email=None)
    for ctx in ctxs:
        ctx["template_set"] = set_name
    return ctxs


def _check_set(ts: TemplateSet, renderer) -> list[Problem]:
    problems = []
    for _, lang, template in list_templates(ts.root, [ts.name]):
        try:
            locales = _locales(lang)
            parse_locale(locales[0])
        except Exception:
            problems.append(Problem(ts.name, f"{lang}/", lang, "folder name is not a language Babel knows"))
            continue
        if not _TEMPLATE_NAME_RE.match(template):  # e.g. a dot in it: TemplateSet refuses to load it
            problems.append(Problem(ts.name, f"{lang}/{template}{_SUBJECT}", lang, f"invalid template name {template!r}"))
            continue
        problems += _missing(ts, lang, template)
        for locale in locales:
            problems += _check_template(ts, renderer, template, locale, pdf=locale == locales[0])
    return problems


def _missing(ts: TemplateSet, lang: str, template: str) -> Iterator[Problem]:
    for kind in KINDS:
        filename = f"{template}.{kind}"
        if (ts.folder / lang / filename).is_file():
            continue
        if lang != FALLBACK_LANGUAGE and (ts.folder / FALLBACK_LANGUAGE / filename).is_file():
            yield Problem(ts.name, f"{lang}/{filename}", lang, f"falls back to {FALLBACK_LANGUAGE}", "warning")
        else:
            yield Problem(ts.name, f"{lang}/{filename}", lang, "missing, and no English file to fall back to")


def _check_template(ts: TemplateSet, renderer, template: str, locale: str, pdf: bool) -> list[Problem]:
    problems: list[Problem] = []

    def add(file: str, message: str, severity: str = "error", line: int | None = None) -> None:
        problems.append(Problem(ts.name, file, locale, message, severity, line))

    for ctx in _contexts(ts.name, locale, template):
        letter_ok = False
        for kind in KINDS:
            try:
                name = ts.template_name(template, kind, locale)
            except TemplateNotFound:
                continue  # reported by _missing
            try:
                out = ts.render(name, ctx)
            except Exception as exc:
                file, line = ts.locate(exc) or (name, None)
                add(file, _describe(exc), line=line)
                continue
            if kind == "subject.txt":
                if not out.strip():
                    add(name, "subject is empty")
                elif "\n" in out.strip():
                    add(name, "subject has more than one line (joined into one when sent)", "warning")
            elif kind == "sms.txt":
                n = len(sms_text(out))
                if n == 0:
                    add(name, "SMS text is empty")
                elif n > SMS_MAX:
                    add(name, f"SMS text has {n} characters, at most {SMS_MAX} (two segments) are allowed")
                elif n > SMS_SEGMENT:
                    add(name, f"SMS text has {n} characters: sent as two SMS (one holds {SMS_SEGMENT})", "warning")
            elif kind == "letter.html":
                letter_ok = True
        if pdf and letter_ok and len(ctx["invoices"]) >= 3:  # the longest letter
            _check_pdf(ts, renderer, ctx, add)
    return problems


def _check_pdf(ts: TemplateSet, renderer, ctx: dict[str, Any], add) -> None:
    from pypdf import PdfReader

    name = ts.template_name(ctx["template"], "letter.html", ctx["locale"])
    try:
        pages = len(PdfReader(io.BytesIO(renderer.render(ctx))).pages)
    except Exception as exc:
        add(name, f"PDF failed: {type(exc).__name__}: {exc}")
        return
    if pages > 1:
        add(name, f"letter PDF has {pages} pages with {len(ctx['invoices'])} invoices (one expected)", "warning")


def _describe(exc: BaseException) -> str:
    """What went wrong, without the location prefix TemplateSet.render adds (Problem has it)."""
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error: {exc.message}"
    original = exc.__cause__ if type(exc.__cause__) is type(exc) else exc
    if isinstance(exc, UndefinedError):
        return f"undefined variable: {original}"
    if isinstance(exc, TemplateNotFound):
        return f"template not found: {original}"
    return f"{type(exc).__name__}: {original}"
