"""Letter PDFs with WeasyPrint: confined, deterministic and fast in bulk.

* Confined: letters may only load files (images, fonts, CSS) from their own
  template set folder, plus ``data:`` URIs (inline bytes, no I/O). Anything
  else (``file:`` outside the folder, ``http(s):``, ``ftp:``...) is refused
  before any I/O, logged at WARNING on logger ``pipeline.delivery.render.pdf`` and the
  letter is rendered without that resource (WeasyPrint's usual behaviour for
  a missing resource), so one bad image does not stop a daily batch.
* Deterministic: WeasyPrint 70 writes /CreationDate and /ModDate only from
  ``<meta name=dcterms.created/modified>`` and no /ID unless asked; a
  finisher overwrites both dates with ``ctx["as_of"]`` so the same context
  always gives byte-identical PDFs, even if a template adds those metas.
* Fast: one FontConfiguration, one parsed letter.css and one compiled
  template cache per process; ``render_many`` fans chunks of contexts out to
  a process pool whose workers each build one renderer.

WeasyPrint is imported lazily (inside the renderer), so ``import
pipeline.delivery.render`` stays cheap for code paths that only send emails.
"""

from __future__ import annotations

import logging
import mimetypes
import multiprocessing
import os
import resource
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from .templates import TemplateSet

LOGGER = logging.getLogger(__name__)


class RenderError(Exception):
    """A letter could not be rendered; ``action_key`` says which one."""

    def __init__(self, action_key: str, message: str):
        super().__init__(action_key, message)
        self.action_key = action_key

    def __str__(self) -> str:
        return f"{self.args[0]}: {self.args[1]}"


class ResourceRefused(ValueError):
    """A letter tried to load something outside its template set folder."""


@lru_cache(maxsize=1)
def _fetcher_class():
    # Defined on first use: subclassing needs weasyprint imported.
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class ConfinedFetcher(URLFetcher):
        def __init__(self, folder: Path):
            super().__init__(allow_redirects=False)
            self.folder = Path(folder).resolve()
            self.refused: list[str] = []  # for tests and previews, per process

        def fetch(self, url, headers=None):
            scheme = urlsplit(url).scheme.lower()
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = Path(url2pathname(unquote(urlsplit(url).path))).resolve()
                if path.is_relative_to(self.folder) and path.is_file():
                    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})
            self.refused.append(url)
            LOGGER.warning("refused to load %s: outside template folder %s", url, self.folder)
            raise ResourceRefused(f"refused to load {url}: only files in {self.folder} are allowed")

    return ConfinedFetcher


def _pdf_date(d: date) -> str:
    return f"D:{d:%Y%m%d}000000Z"


class LetterRenderer:
    """Renders letter contexts to PDF bytes; build one per process and reuse it."""

    def __init__(self, template_root: Path):
        from weasyprint.text.fonts import FontConfiguration

        self.template_root = Path(template_root)
        self.font_config = FontConfiguration()
        # set name -> (templates, parsed stylesheets, fetcher, base URL)
        self._sets: dict[str, tuple[TemplateSet, list, Any, str]] = {}

    def _set(self, name: str):
        """Templates, parsed letter.css, fetcher and base URL of one template set, cached."""
        if name not in self._sets:
            from weasyprint import CSS

            templates = TemplateSet(self.template_root, name)
            fetcher = _fetcher_class()(templates.folder)
            base_url = templates.folder.as_uri() + "/"
            # Parsed once; letter.css is optional (a set may style inline).
            stylesheets = []
            if templates.css_path.is_file():
                stylesheets.append(CSS(
                    string=templates.css_path.read_text(encoding="utf-8"),
                    base_url=base_url,
                    url_fetcher=fetcher,
                    font_config=self.font_config,
                ))
            self._sets[name] = (templates, stylesheets, fetcher, base_url)
        return self._sets[name]

    def fetcher(self, template_set: str = "default"):
        return self._set(template_set)[2]

    def render(self, ctx: Mapping[str, Any]) -> bytes:
        from weasyprint import HTML

        templates, stylesheets, fetcher, base_url = self._set(ctx["template_set"])
        html = HTML(string=templates.render_letter_html(ctx), base_url=base_url, url_fetcher=fetcher)
        stamp = _pdf_date(ctx["as_of"])

        def finisher(document, pdf):
            pdf.info["CreationDate"] = pdf.info["ModDate"] = _pdf_string(stamp)

        return html.write_pdf(stylesheets=stylesheets, font_config=self.font_config, finisher=finisher)

    def render_many(
        self,
        ctxs: Iterable[Mapping[str, Any]],
        workers: int = 1,
        chunk_size: int | None = None,
        stats: dict[int, dict[str, float]] | None = None,
        *,
        errors: str = "raise",
    ) -> Iterator[tuple[str, bytes | RenderError]]:
        """Yield ``(action_key, pdf_bytes)`` in input order; see module ``render_many``."""
        return render_many(ctxs, workers, self.template_root, chunk_size, stats, renderer=self, errors=errors)


def _pdf_string(text: str):
    import pydyf  # a WeasyPrint dependency

    return pydyf.String(text)


# --- process pool -----------------------------------------------------------

_WORKER_RENDERER: LetterRenderer | None = None


def _init_worker(template_root: str) -> None:
    global _WORKER_RENDERER
    _WORKER_RENDERER = LetterRenderer(Path(template_root))


def _usage() -> dict[str, float]:
    """This process's peak RSS (MiB) and CPU seconds so far, for ``stats``."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mib": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime}  # Linux: KiB


def _render_chunk(chunk: list[Mapping[str, Any]], errors: str = "raise") -> tuple[
        int, dict[str, float], list[tuple[str, bytes | RenderError]]]:
    out = []
    for ctx in chunk:
        out.append((ctx["action_key"], _render_or_error(_WORKER_RENDERER, ctx, errors)))
    return os.getpid(), _usage(), out


def _render_or_error(renderer: LetterRenderer, ctx: Mapping[str, Any], errors: str) -> bytes | RenderError:
    try:
        return _render_one(renderer, ctx)
    except RenderError as exc:
        if errors == "raise":
            raise
        return RenderError(exc.action_key, exc.args[1])  # without the traceback: it pickles small


def _render_one(renderer: LetterRenderer, ctx: Mapping[str, Any]) -> bytes:
    try:
        return renderer.render(ctx)
    except Exception as exc:
        # Plain strings only: the error must pickle back from a worker.
        raise RenderError(str(ctx.get("action_key")), f"{type(exc).__name__}: {exc}") from exc


def render_many(
    ctxs: Iterable[Mapping[str, Any]],
    workers: int,
    template_root: Path,
    chunk_size: int | None = None,
    stats: dict[int, dict[str, float]] | None = None,
    renderer: LetterRenderer | None = None,
    *,
    errors: str = "raise",
) -> Iterator[tuple[str, bytes | RenderError]]:
    """Render many letters, yielding ``(action_key, pdf_bytes)`` in input order.

    ``workers <= 1`` renders in this process. Otherwise a pool of ``workers``
    processes ("forkserver": safe in a threaded host such as Dagster, and
    workers start without the parent's memory) each build one LetterRenderer;
    contexts travel in chunks to cut pickling round-trips, and at most two
    chunks per worker are in flight so memory stays bounded for big batches.
    ``stats``, if given, receives ``{worker_pid: {"peak_rss_mib", "cpu_s"}}``
    (workers=1: this process). ``errors="raise"``: the first failing letter
    raises RenderError (the batch stops); ``errors="return"``: a failing letter
    yields ``(action_key, RenderError)`` in its place and the others go on
    (what dispatch does: one bad document must not stop the day).
    """
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be raise or return, not {errors!r}")
    ctxs = list(ctxs)
    if workers <= 1 or len(ctxs) <= 1:
        renderer = renderer or LetterRenderer(template_root)
        for ctx in ctxs:
            yield ctx["action_key"], _render_or_error(renderer, ctx, errors)
        if stats is not None:
            stats[os.getpid()] = _usage()
        return

    if chunk_size is None:
        # ~4 chunks per worker balances load; cap keeps results flowing.
        chunk_size = max(1, min(25, -(-len(ctxs) // (workers * 4))))
    chunks = [ctxs[i : i + chunk_size] for i in range(0, len(ctxs), chunk_size)]
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(str(Path(template_root).resolve()),),
    ) as pool:
        pending: deque = deque()
        next_chunk = iter(chunks)
        for chunk in next_chunk:
            pending.append(pool.submit(_render_chunk, chunk, errors))
            if len(pending) >= workers * 2:
                break
        while pending:
            pid, usage, results = pending.popleft().result()
            for chunk in next_chunk:
                pending.append(pool.submit(_render_chunk, chunk, errors))
                break
            if stats is not None:  # both figures only grow: keep the latest per worker
                old = stats.get(pid, usage)
                stats[pid] = {k: max(old[k], usage[k]) for k in usage}
            yield from results
