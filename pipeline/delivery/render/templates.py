"""Sandboxed Jinja2 rendering of reminder emails and letter HTML.

Templates are edited by users and therefore untrusted (SPEC section 5): they
run in Jinja's ImmutableSandboxedEnvironment (no dunder access, no mutation
of the context), can only load files from their own set folder, and HTML
output is autoescaped. StrictUndefined turns a typo into an error that names
the template file, line and variable instead of silently printing nothing.

Layout of a set (``templates/<set>/``)::

    <lang>/<template>.subject.txt   email subject (one line)
    <lang>/<template>.txt           email text body
    <lang>/<template>.html          email HTML body
    <lang>/<template>.letter.html   PDF letter (usually extends base_letter.html)
    <lang>/<template>.sms.txt       SMS text (one line, at most 306 characters)
    letter.css                      letter stylesheet, applied by the PDF renderer
    base_letter.html                optional shared letter layout
    <lang>/_*.html                  anything else the templates import (the default set keeps
                                    each kind's text in ``_<template>.html``, shared by the
                                    email and the letter, and common pieces in ``_parts.html``)

``<lang>`` is the language of the customer's locale (``de_DE`` -> ``de``);
a file missing for that language falls back to ``en``. Money and dates are
still formatted for the customer's full locale.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, pass_context
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .formatting import format_date, format_money, format_number, language_of

FALLBACK_LANGUAGE = "en"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_LINEBREAKS_RE = re.compile(r"[ \t]*[\r\n]+[ \t]*")
_SPACES_RE = re.compile(r"[ \t]{2,}")
# One SMS segment holds 160 GSM-7 characters; a concatenated message of two
# segments 2 x 153 = 306. Longer texts cost more and arrive split on old phones.
SMS_SEGMENT = 160
SMS_MAX = 306
# Bounds for '*' and '**' so a template cannot allocate gigabytes ('x' * 10**10).
_MAX_REPEAT = 100_000
_MAX_EXPONENT = 1_000


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class SmsTooLong(ValueError):
    """An SMS template rendered to more than SMS_MAX characters."""


class DocumentRefused(ValueError):
    """A context that must not become a document; `refused` in the context says why (no creditor
    account for its currency, a letter to an address the post cannot deliver)."""


def check_not_refused(ctx: Mapping[str, Any]) -> None:
    """Raise DocumentRefused when `build_contexts` marked the context as refused: one check for the
    email, the letter and the SMS, before any template runs."""
    reason = ctx.get("refused")
    if reason:
        raise DocumentRefused(reason)


def one_line(text: str) -> str:
    """Line breaks (and the spaces around them) become one space: subjects and SMS are one line.

    (Not str.split(): it would also eat the no-break spaces in amounts.)
    """
    return _LINEBREAKS_RE.sub(" ", text).strip()


def sms_text(rendered: str) -> str:
    """A rendered SMS template as sent: one line, runs of spaces collapsed (no-break spaces kept)."""
    return _SPACES_RE.sub(" ", one_line(rendered))


class _ConfinedLoader(FileSystemLoader):
    """FileSystemLoader that also refuses symlinks pointing out of the set folder.

    Jinja already rejects '..' in template names; resolving the real path
    closes the remaining hole (a symlink inside the folder).
    """

    def __init__(self, folder: Path):
        self._real = os.path.realpath(folder)
        super().__init__(str(folder), followlinks=False)

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        real = os.path.realpath(filename)
        if os.path.commonpath([real, self._real]) != self._real:
            raise TemplateNotFound(template)
        return source, filename, uptodate


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > _MAX_REPEAT:
                    raise SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


# Filters read the locale from the render context, so templates write
# {{ amounts.total|money }} and never repeat the locale or currency.
@pass_context
def _money_filter(context, amount, currency=None):
    if currency is None:
        currency = context["amounts"]["currency"]
    return format_money(amount, currency, context["locale"])


@pass_context
def _date_filter(context, value, fmt="medium"):
    return format_date(value, context["locale"], fmt)


@pass_context
def _number_filter(context, value, fmt=None):
    return format_number(value, context["locale"], fmt)


def make_environment(folder: Path) -> _Environment:
    env = _Environment(
        loader=_ConfinedLoader(folder),
        undefined=StrictUndefined,
        # Only .html output is markup; subjects and text bodies stay raw.
        autoescape=lambda name: bool(name) and name.endswith(".html"),
        trim_blocks=True,
        lstrip_blocks=True,
        # None is an empty optional column (e.g. address_line2): print nothing.
        finalize=lambda value: "" if value is None else value,
    )
    env.filters.update(money=_money_filter, date=_date_filter, number=_number_filter)
    return env


class TemplateSet:
    """One template set (``<root>/<name>/``) with one compiled-template cache."""

    def __init__(self, root: Path, name: str = "default"):
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid template set name: {name!r}")
        self.root = Path(root)
        self.name = name
        self.folder = (self.root / name).resolve()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"template set not found: {self.folder}")
        self.env = make_environment(self.folder)

    @property
    def css_path(self) -> Path:
        return self.folder / "letter.css"

    def template_name(self, template: str, kind: str, locale: str | None) -> str:
        """Loader path of e.g. the German reminder subject: ``de/reminder.subject.txt``."""
        if not _NAME_RE.match(template or ""):
            raise ValueError(f"invalid template name: {template!r}")
        filename = f"{template}.{kind}"
        for lang in (language_of(locale), FALLBACK_LANGUAGE):
            if (self.folder / lang / filename).is_file():
                return f"{lang}/{filename}"
        raise TemplateNotFound(f"{self.name}/{language_of(locale)}/{filename} (nor {FALLBACK_LANGUAGE})")

    def render(self, name: str, ctx: Mapping[str, Any]) -> str:
        """Render one file of the set; errors name the file, line and cause."""
        variables = dict(ctx)
        # The folder actually used, so shared parts are imported from the same language.
        variables["lang"] = name.split("/", 1)[0] if "/" in name else FALLBACK_LANGUAGE
        try:
            return self.env.get_template(name).render(variables)
        except TemplateSyntaxError:
            raise  # already carries file name and line
        except Exception as exc:
            where = self._location(exc) or f"{self.name}/{name}"
            try:
                augmented = type(exc)(f"{where}: {exc}")
            except Exception:
                raise exc from None
            raise augmented from exc

    def locate(self, exc: BaseException) -> tuple[str, int] | None:
        """``("de/reminder.txt", 3)``: the set file and line a render error happened in, if any."""
        if isinstance(exc, TemplateSyntaxError) and exc.name:
            return exc.name, exc.lineno
        # Jinja rewrites tracebacks so template frames carry the template's
        # filename and line; the innermost one is where the error happened.
        # An error re-raised by render() keeps those frames on its cause.
        for e in (exc, exc.__cause__):
            frames = self._frames(e) if e is not None else []
            if frames:
                return frames[-1]
        return None

    def _frames(self, exc: BaseException) -> list[tuple[str, int]]:
        prefix = str(self.folder) + os.sep
        out, tb = [], exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(prefix):
                out.append((filename[len(prefix):], tb.tb_lineno))
            tb = tb.tb_next
        return out

    def _location(self, exc: BaseException) -> str | None:
        found = self.locate(exc)
        return f"{self.name}/{found[0]} line {found[1]}" if found else None

    def render_email(self, ctx: Mapping[str, Any]) -> RenderedEmail:
        check_not_refused(ctx)
        template, locale = ctx["template"], ctx.get("locale")
        subject = self.render(self.template_name(template, "subject.txt", locale), ctx)
        return RenderedEmail(
            # One line: a newline in a header would be an injection.
            subject=one_line(subject),
            text=self.render(self.template_name(template, "txt", locale), ctx),
            html=self.render(self.template_name(template, "html", locale), ctx),
        )

    def render_letter_html(self, ctx: Mapping[str, Any]) -> str:
        check_not_refused(ctx)
        return self.render(self.template_name(ctx["template"], "letter.html", ctx.get("locale")), ctx)

    def render_sms(self, ctx: Mapping[str, Any]) -> str:
        """The SMS text: one line, runs of spaces collapsed, at most SMS_MAX characters."""
        check_not_refused(ctx)
        name = self.template_name(ctx["template"], "sms.txt", ctx.get("locale"))
        text = sms_text(self.render(name, ctx))
        if len(text) > SMS_MAX:
            raise SmsTooLong(f"{self.name}/{name}: SMS text has {len(text)} characters, at most {SMS_MAX} allowed")
        return text
