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
  template cache per process; the static parts of a letter (letterhead,
  fold marks, footer: what is the same for every letter of a sender,
  language and account) are laid out once per process and drawn onto each
  letter's pages (see "Static layer" below); ``render_many`` fans chunks of
  contexts out to a process pool whose workers each build one renderer, fork
  from the renderer's own forkserver, which has WeasyPrint imported already, and keep their
  long-lived objects out of the cyclic garbage collector's scans.

Static layer. A letter template may mark blocks that do not depend on the
letter with ``<!--static-->`` ... ``<!--/static-->`` (plain HTML comments:
any other renderer, a browser or the naive loop, just renders them in place).
The renderer lays the marked blocks out once, in a document of their own
(the letter's ``<head>`` without its ``<title>``, its ``<body>`` tag and the
blocks), keyed by that exact HTML, so a block whose text changes (another
account, language or sender) gets a layout of its own. Each letter is laid
out without them, and the stored boxes are added to its pages before
painting: absolutely positioned ones to the first page, fixed ones to every
page (as CSS places them). This only equals laying out the whole letter
because such blocks are out of flow: the renderer uses the layer only if
every marked block is ``position: absolute`` or ``fixed`` and fits on one
page, and only for letters whose pages all have the layer's page geometry
when it holds fixed blocks; otherwise it renders the whole letter in one
document, as without markers. Marked blocks must not depend on the rest of
the document (no sibling selectors or counters across them).

WeasyPrint is imported lazily (inside the renderer), so ``import
pipeline.delivery.render`` stays cheap for code paths that only send emails.
"""

from __future__ import annotations

import gc
import logging
import mimetypes
import multiprocessing
import os
import re
import resource
import threading
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from functools import lru_cache
from multiprocessing import context as mp_context
from multiprocessing import forkserver, popen_forkserver
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


# The static layer's markers and what the layer's own document keeps of the letter's head.
_STATIC_RE = re.compile(r"<!--\s*static\s*-->(.*?)<!--\s*/static\s*-->", re.S | re.I)
_BODY_RE = re.compile(r"<body\b[^>]*>", re.I)
_TITLE_RE = re.compile(r"<title\b.*?</title\s*>", re.S | re.I)
# Distinct static layers kept per process (sender x language x account, per template set).
_STATIC_CACHE_SIZE = 64


def _split_static(html: str) -> tuple[str | None, str]:
    """(HTML of the static layer or None, HTML of the letter without it)."""
    first = _STATIC_RE.search(html)
    if first is None:
        return None, html
    body = _BODY_RE.search(html)
    if body is None or body.end() > first.start():
        return None, html  # markers outside the body: not a layer, render as is
    head = _TITLE_RE.sub("", html[: body.end()])
    static = head + "".join(m.group(1) for m in _STATIC_RE.finditer(html)) + "</body></html>"
    return static, _STATIC_RE.sub("", html)


def _page_geometry(page_box) -> tuple[float, ...]:
    return (page_box.margin_width(), page_box.margin_height(), page_box.margin_top, page_box.margin_right,
            page_box.margin_bottom, page_box.margin_left, page_box.padding_top, page_box.padding_left,
            page_box.border_top_width, page_box.border_left_width)


def _groups_children(box) -> bool:
    """Whether ``box`` makes its descendants a group (transparency, transform, clip): then they
    cannot be painted without it."""
    style = box.style
    return style["opacity"] < 1 or bool(style["transform"]) or style["overflow"] != "visible"


class _StaticLayer:
    """The laid-out static blocks of one letter layout, ready to be added to a letter's pages.

    The blocks' own boxes (not the layer document's html and body, whose backgrounds and borders
    the letter paints) become extra children of a letter's page boxes, right after the letter's
    root box: positioned boxes paint over the letter's flow, as CSS paints them. Their links,
    anchors and bookmarks join the page's.
    """

    def __init__(self, document, first_page: list, other_pages: list):
        self.document = document  # keeps the boxes' text layouts, images and fonts alive
        self.geometry = _page_geometry(document.pages[0]._page_box)
        self.first_page = (first_page, *_marks(first_page))
        self.other_pages = (other_pages, *_marks(other_pages))

    @staticmethod
    def build(document) -> "_StaticLayer | None":
        """The layer, or None when its blocks are not all out of flow on one page (then: no layer)."""
        from weasyprint.layout.absolute import AbsolutePlaceholder

        if len(document.pages) != 1:
            return None
        children = document.pages[0]._page_box.children
        if not children or len(children[0].children) != 1:
            return None
        root = children[0]
        body = root.children[0]
        if _groups_children(root) or _groups_children(body) or not body.children:
            return None
        boxes = []
        for child in body.children:
            if not isinstance(child, AbsolutePlaceholder) or child._box.style["position"] not in ("absolute", "fixed"):
                return None
            boxes.append(child._box)
        return _StaticLayer(document, boxes, [box for box in boxes if box.style["position"] == "fixed"])

    def fits(self, document) -> bool:
        """Whether the pages of ``document`` that take blocks of the layer have its page geometry (the
        first page: all blocks; the others: the fixed ones), so the blocks sit where CSS puts them."""
        pages = document.pages if self.other_pages[0] else document.pages[:1]
        return all(_page_geometry(page._page_box) == self.geometry for page in pages)

    def apply(self, document) -> None:
        for number, page in enumerate(document.pages):
            boxes, anchors, links, bookmarks = self.first_page if number == 0 else self.other_pages
            if not boxes:
                continue
            children = page._page_box.children
            page._page_box.children = [*children[:1], *boxes, *children[1:]]  # after the root box
            page.links.extend(links)
            page.bookmarks.extend(bookmarks)
            for name, target in anchors.items():
                page.anchors.setdefault(name, target)


def _marks(boxes: list) -> tuple[dict, list, list]:
    """(anchors, links, bookmarks) in ``boxes``, as WeasyPrint gathers them for a page."""
    from weasyprint.anchors import gather_anchors

    anchors, links, bookmarks, forms = {}, [], [], {None: []}
    for box in boxes:
        gather_anchors(box, anchors, links, bookmarks, forms)
    return anchors, links, bookmarks


class LetterRenderer:
    """Renders letter contexts to PDF bytes; build one per process and reuse it."""

    def __init__(self, template_root: Path):
        from weasyprint.text.fonts import FontConfiguration

        self.template_root = Path(template_root)
        self.font_config = FontConfiguration()
        # set name -> (templates, parsed stylesheets, fetcher, base URL)
        self._sets: dict[str, tuple[TemplateSet, list, Any, str]] = {}
        # (set name, static HTML) -> _StaticLayer, or None when that HTML cannot be a layer
        self._static: OrderedDict[tuple[str, str], _StaticLayer | None] = OrderedDict()

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

    def _layout(self, html: str, stylesheets: list, fetcher, base_url: str):
        from weasyprint import HTML

        return HTML(string=html, base_url=base_url, url_fetcher=fetcher).render(
            stylesheets=stylesheets, font_config=self.font_config)

    def _static_layer(self, set_name: str, static_html: str, stylesheets: list, fetcher, base_url: str):
        key = (set_name, static_html)
        if key in self._static:
            self._static.move_to_end(key)
            return self._static[key]
        layer = _StaticLayer.build(self._layout(static_html, stylesheets, fetcher, base_url))
        self._static[key] = layer
        if len(self._static) > _STATIC_CACHE_SIZE:
            self._static.popitem(last=False)
        return layer

    def render(self, ctx: Mapping[str, Any]) -> bytes:
        set_name = ctx["template_set"]
        templates, stylesheets, fetcher, base_url = self._set(set_name)
        html = templates.render_letter_html(ctx)
        stamp = _pdf_date(ctx["as_of"])

        def finisher(document, pdf):
            pdf.info["CreationDate"] = pdf.info["ModDate"] = _pdf_string(stamp)

        document = None
        static_html, letter_html = _split_static(html)
        layer = static_html and self._static_layer(set_name, static_html, stylesheets, fetcher, base_url)
        if layer:
            document = self._layout(letter_html, stylesheets, fetcher, base_url)
            if layer.fits(document):
                layer.apply(document)
            else:  # e.g. a Swiss QR-bill page without margins: fixed blocks would sit elsewhere there
                document = None
        if document is None:  # no (usable) layer: the whole letter in one document
            document = self._layout(html, stylesheets, fetcher, base_url)
        return document.write_pdf(finisher=finisher)

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
_WORKER_CHUNKS = 0  # chunks this worker has rendered


def _init_worker(template_root: str) -> None:
    global _WORKER_RENDERER
    _WORKER_RENDERER = LetterRenderer(Path(template_root))
    _freeze_long_lived()


def _freeze_long_lived() -> None:
    """Move what lives as long as the worker (modules, and after its first chunk the compiled templates,
    static layers and font caches) out of the cyclic garbage collector's sight. Each letter leaves ~10k
    objects in reference cycles, so the collector runs often, and its older generations held ~10^5
    long-lived objects to scan again each time (~6 % of a worker's CPU, measured). Collected first, so
    no garbage is frozen; the worker's own process only, never the caller's."""
    gc.collect()
    gc.freeze()


def _usage() -> dict[str, float]:
    """This process's peak RSS (MiB) and CPU seconds so far, for ``stats``."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mib": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime}  # Linux: KiB


def _render_chunk(chunk: list[Mapping[str, Any]], errors: str = "raise") -> tuple[
        int, dict[str, float], list[tuple[str, bytes | RenderError]]]:
    global _WORKER_CHUNKS
    out = []
    for ctx in chunk:
        out.append((ctx["action_key"], _render_or_error(_WORKER_RENDERER, ctx, errors)))
    _WORKER_CHUNKS += 1
    if _WORKER_CHUNKS == 1:
        _freeze_long_lived()
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
    processes (``render_process_context``: a forkserver of the renderer's own,
    safe in a threaded host such as Dagster, with WeasyPrint preloaded and
    nothing of the host's) each build one
    LetterRenderer; contexts travel in chunks to cut pickling round-trips
    (``chunk_size``, or by default chunks that shrink towards the end of the
    batch so the workers finish together), and at most ``_IN_FLIGHT`` chunks
    per worker are in flight so memory stays bounded for big batches (results
    come back in input order: a worker that is ahead keeps working while the
    oldest chunk is still on a slower one).
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

    chunks = _chunks(ctxs, workers, chunk_size)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=render_process_context(),
        initializer=_init_worker,
        initargs=(str(Path(template_root).resolve()),),
    ) as pool:
        pending: deque = deque()
        next_chunk = iter(chunks)
        for chunk in next_chunk:
            pending.append(pool.submit(_render_chunk, chunk, errors))
            if len(pending) >= workers * _IN_FLIGHT:
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


# Chunks of at most this many letters (~1 s of one worker): results keep flowing and memory stays small.
_MAX_CHUNK = 10
# Chunks per worker submitted ahead (a few MB of contexts and PDFs at most).
_IN_FLIGHT = 4
# What the forkserver imports before it forks workers: each worker starts with WeasyPrint,
# Jinja and this module loaded (copy-on-write) instead of importing them itself (~1 s of CPU).
_PRELOAD = ("pipeline.delivery.render.pdf", "weasyprint", "weasyprint.text.fonts", "weasyprint.layout.absolute",
            "PIL.PngImagePlugin")


def _chunks(ctxs: list, workers: int, chunk_size: int | None) -> Iterator[list]:
    """``chunk_size`` letters at a time if given; else guided: about a quarter of each worker's share of
    what is left (at most _MAX_CHUNK), shrinking towards the end so no worker idles long on the last chunk."""
    start = 0
    while start < len(ctxs):
        size = chunk_size or max(1, min(_MAX_CHUNK, -(-(len(ctxs) - start) // (workers * 4))))
        yield ctxs[start: start + size]
        start += size


# Why a forkserver of our own: multiprocessing keeps one per process, and whoever starts it first
# chooses what it preloads. Dagster's multiprocess executor starts it with Dagster preloaded, and
# render workers forked from that one started with 157 MiB each instead of about 80. This one
# preloads the renderer and nothing else (not even the host's __main__), whoever else runs in the
# process; it starts on first use and ends with the process.
_RENDER_FORKSERVER = forkserver.ForkServer()
_RENDER_FORKSERVER.set_forkserver_preload(list(_PRELOAD))
_LAUNCH_LOCK = threading.Lock()


class _OwnForkServerPopen(popen_forkserver.Popen):
    """Starts a process from its class's own forkserver (`forkserver`) instead of the process-wide one."""

    def _launch(self, process_obj):
        # popen_forkserver asks the module-level function for the connection (Python 3.11, which the
        # project pins); for the length of this launch it is the process class's server's. Another
        # thread launching meanwhile would get a process from this server: a process all the same.
        with _LAUNCH_LOCK:
            default = forkserver.connect_to_new_process
            forkserver.connect_to_new_process = type(process_obj).forkserver.connect_to_new_process
            try:
                super()._launch(process_obj)
            finally:
                forkserver.connect_to_new_process = default


class _RenderForkServerProcess(mp_context.ForkServerProcess):
    # a class attribute: not pickled with the process (the child unpickles it by its class's name)
    forkserver = _RENDER_FORKSERVER

    @staticmethod
    def _Popen(process_obj):
        return _OwnForkServerPopen(process_obj)


class _RenderForkServerContext(mp_context.ForkServerContext):
    Process = _RenderForkServerProcess


def render_process_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context of render workers and of shard processes: "forkserver" (safe in a
    threaded host such as Dagster; a process starts without its parent's memory), from the renderer's
    own server, which has WeasyPrint imported already (a process starts without ~1 s of imports)."""
    return _RenderForkServerContext()
