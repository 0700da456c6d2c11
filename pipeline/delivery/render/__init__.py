"""Documents for dunning actions: emails (subject, text, HTML) and letter PDFs.

``TemplateSet`` renders sandboxed Jinja2 templates, ``LetterRenderer`` turns
letter HTML into deterministic PDFs, ``render_many`` does that in bulk on a
process pool. Importing this package does not import WeasyPrint (slow and
memory-hungry); only creating a LetterRenderer does.
"""

from .formatting import format_date, format_money, format_number, language_of
from .pdf import LetterRenderer, RenderError, ResourceRefused, render_many
from .templates import RenderedEmail, TemplateSet

__all__ = [
    "LetterRenderer",
    "RenderError",
    "RenderedEmail",
    "ResourceRefused",
    "TemplateSet",
    "format_date",
    "format_money",
    "format_number",
    "language_of",
    "render_many",
]
