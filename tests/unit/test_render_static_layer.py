"""The letter renderer's fast path: the static layer (letterhead, marks, footer laid out once per
process) paints the same pages as the whole letter laid out in one document, output stays
byte-identical whatever the renderer has cached, and the process pool's chunks and forkserver."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pypdfium2
import pytest
from pypdf import PdfReader

from pipeline.delivery.render.pdf import (
    _PRELOAD,
    _RENDER_FORKSERVER,
    LetterRenderer,
    _chunks,
    render_process_context,
    _split_static,
)
from pipeline.delivery.render.samples import TEMPLATE_ROOT, sample_context

MARKERS = ("<!--static-->", "<!--/static-->")


def whole_letter_root(tmp_path: Path) -> Path:
    """A copy of the default set without the static markers: every letter laid out in one document,
    as any other renderer (a browser, the naive benchmark loop) lays it out."""
    root = tmp_path / "whole"
    shutil.copytree(TEMPLATE_ROOT / "default", root / "default")
    base = root / "default" / "base_letter.html"
    text = base.read_text(encoding="utf-8")
    assert all(marker in text for marker in MARKERS)
    base.write_text(text.replace(MARKERS[0], "").replace(MARKERS[1], ""), encoding="utf-8")
    return root


def pages(pdf: bytes) -> list[bytes]:
    document = pypdfium2.PdfDocument(pdf)
    return [document[k].render(scale=2).to_pil().convert("L").tobytes() for k in range(len(document))]


def long_letter(i: int, n: int, **kwargs) -> dict:
    ctx = sample_context(i, template="final", **kwargs)
    ctx["invoices"] = [dict(ctx["invoice"], invoice_number=f"RE-2026-{k:05d}") for k in range(n)]
    return ctx


CASES = {
    "de EUR": lambda: sample_context(0),
    "fr EUR three invoices": lambda: sample_context(2),
    "da EUR": lambda: sample_context(4),
    "en GBP": lambda: sample_context(1, currency="GBP", country="GB"),
    "de CHF with QR-bill page": lambda: sample_context(3, locale="de_DE", currency="CHF", country="CH"),
    "de two pages": lambda: long_letter(2, 30, locale="de_DE"),
    "en three pages": lambda: long_letter(4, 70, locale="en_GB", currency="GBP", country="GB"),
}


@pytest.fixture(scope="module")
def renderers(tmp_path_factory) -> tuple[LetterRenderer, LetterRenderer]:
    return LetterRenderer(TEMPLATE_ROOT), LetterRenderer(whole_letter_root(tmp_path_factory.mktemp("sets")))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_static_layer_paints_the_same_pages_as_the_whole_letter(renderers, case):
    layered, whole = renderers
    ctx = CASES[case]()
    fast, slow = layered.render(ctx), whole.render(ctx)
    assert pages(fast) == pages(slow)  # pixel for pixel, on every page
    words = lambda pdf: sorted(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert words(fast) == words(slow)  # the same text (in another order: the layer is painted after the flow)


def test_the_default_letters_use_one_layer_per_sender_language_and_account():
    renderer = LetterRenderer(TEMPLATE_ROOT)
    for i in range(14):  # seven locales (five languages, de and en twice), EUR
        renderer.render(sample_context(i))
    renderer.render(sample_context(1, currency="GBP", country="GB"))
    layers = list(renderer._static.values())
    assert len(layers) == 6 and all(layer is not None for layer in layers)
    boxes = [(len(layer.first_page[0]), len(layer.other_pages[0])) for layer in layers]
    assert boxes == [(5, 1)] * 6  # three marks, the letterhead and the footer; the footer


def test_output_does_not_depend_on_what_the_renderer_has_cached():
    ctxs = [sample_context(i) for i in range(8)] + [CASES["de CHF with QR-bill page"](), CASES["de two pages"]()]
    warm = LetterRenderer(TEMPLATE_ROOT)
    in_order = [warm.render(ctx) for ctx in ctxs]
    again = [warm.render(ctx) for ctx in reversed(ctxs)][::-1]
    fresh = [LetterRenderer(TEMPLATE_ROOT).render(ctx) for ctx in ctxs]
    assert in_order == again == fresh


def test_marked_blocks_in_the_flow_are_no_layer_and_render_as_without_markers(tmp_path):
    root = whole_letter_root(tmp_path)
    base = root / "default" / "base_letter.html"
    text = base.read_text(encoding="utf-8")
    whole = LetterRenderer(root).render(sample_context(0))
    assert "<main>\n<h1>" in text and "</h1>\n" in text
    # the heading is in the flow: laid out apart, the text below would move up
    base.write_text(text.replace("<main>\n", "<main>\n<!--static-->").replace("</h1>\n", "</h1>\n<!--/static-->"),
                    encoding="utf-8")
    renderer = LetterRenderer(root)
    assert renderer.render(sample_context(0)) == whole  # the markers are comments: the same bytes
    assert list(renderer._static.values()) == [None]


def test_links_in_the_static_layer_are_on_every_page_that_shows_them(tmp_path):
    def with_links(root: Path) -> Path:
        base = root / "default" / "base_letter.html"
        text = base.read_text(encoding="utf-8")
        assert '<div class="mark mark-fold2"></div>\n' in text and '<div class="org-name">' in text
        text = text.replace('<div class="mark mark-fold2"></div>\n', '<div class="mark mark-fold2"></div>\n'
                            '<div style="position: fixed; top: 0; left: 0"><a href="https://acme.example/imprint">'
                            'Imprint</a></div>\n')  # on every page
        text = text.replace('<div class="org-name">', '<div class="org-name"><a href="https://acme.example/">A</a>')
        base.write_text(text, encoding="utf-8")
        return root

    layered_root = tmp_path / "layered"
    shutil.copytree(TEMPLATE_ROOT / "default", layered_root / "default")
    ctx = long_letter(2, 30, locale="de_DE")  # two pages
    links = lambda pdf: [sorted(annotation.get_object()["/A"]["/URI"] for annotation in page.get("/Annots", []))
                         for page in PdfReader(io.BytesIO(pdf)).pages]
    layered = LetterRenderer(with_links(layered_root)).render(ctx)
    whole = LetterRenderer(with_links(whole_letter_root(tmp_path))).render(ctx)
    assert links(layered) == links(whole) == [["https://acme.example/", "https://acme.example/imprint"],
                                              ["https://acme.example/imprint"]]
    assert pages(layered) == pages(whole)


def test_split_static():
    html = ("<!DOCTYPE html><html lang=\"de\"><head><meta charset=\"utf-8\"><title>Mahnung 42</title></head>"
            "<body class=\"x\">\n<!--static--><div class=\"a\">A</div><!--/static-->\n<main>M</main>"
            "<!-- static --><div class=\"f\">F</div><!--/static--></body></html>")
    static, letter = _split_static(html)
    assert static == ("<!DOCTYPE html><html lang=\"de\"><head><meta charset=\"utf-8\"></head><body class=\"x\">"
                      "<div class=\"a\">A</div><div class=\"f\">F</div></body></html>")  # no title: same for all
    assert letter == ("<!DOCTYPE html><html lang=\"de\"><head><meta charset=\"utf-8\"><title>Mahnung 42</title>"
                      "</head><body class=\"x\">\n\n<main>M</main></body></html>")
    plain = "<html><body><p>x</p></body></html>"
    assert _split_static(plain) == (None, plain)
    in_head = "<html><head><!--static--><style></style><!--/static--></head><body></body></html>"
    assert _split_static(in_head) == (None, in_head)


def test_chunks_cover_every_letter_in_order_and_shrink_towards_the_end():
    ctxs = list(range(400))
    chunks = list(_chunks(ctxs, 2, None))
    assert [c for chunk in chunks for c in chunk] == ctxs
    sizes = [len(chunk) for chunk in chunks]
    assert max(sizes) == 10 and sizes == sorted(sizes, reverse=True) and sizes[-1] == 1
    assert [len(chunk) for chunk in _chunks(ctxs, 2, 30)] == [30] * 13 + [10]
    assert list(_chunks([1, 2, 3], 4, None)) == [[1], [2], [3]]


def test_render_processes_come_from_the_renderers_own_forkserver_not_the_process_wide_one():
    from multiprocessing import forkserver

    context = render_process_context()
    assert context.get_start_method() == "forkserver"
    assert _RENDER_FORKSERVER is not forkserver._forkserver
    assert _RENDER_FORKSERVER._preload_modules == list(_PRELOAD)  # no "__main__": nothing of the host's


# Renders in a fresh interpreter whose process-wide forkserver runs already with Dagster preloaded, as
# Dagster's multiprocess executor leaves it in its process: see the test below.
_RENDER_BOTH_WAYS = """
import json, multiprocessing, pickle, sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver
from pathlib import Path
if __name__ == "__main__":
    multiprocessing.set_forkserver_preload(["dagster", "duckdb", "pyarrow"])
    forkserver.ensure_running()
    from pipeline.delivery.render.pdf import render_many, render_process_context
    root = Path(sys.argv[1])
    ctxs = pickle.loads((root / "contexts.pickle").read_bytes())
    stats = {}
    parallel = list(render_many(ctxs, 2, root, stats=stats))
    with ProcessPoolExecutor(1, mp_context=render_process_context()) as pool:
        loaded = pool.submit(eval, "sorted(set(__import__('sys').modules) & {'dagster', 'duckdb', 'weasyprint'})").result()
    print(json.dumps({"same": parallel == list(render_many(ctxs, 1, root)), "stats": stats, "loaded": loaded,
                      "host_server": forkserver._forkserver._forkserver_pid is not None}))
"""


def test_a_worker_stays_well_under_150_mib_and_matches_serial_output(tmp_path):
    """Measured in a host that started the process-wide forkserver with Dagster preloaded. Render
    workers forked from that one started with its memory (112-123 MiB each here, 157 MiB in a test
    process where a Dagster test had run before, against 71-74 MiB); they come from the renderer's
    own forkserver, which has WeasyPrint loaded and nothing of the host's."""
    shutil.copytree(TEMPLATE_ROOT / "default", tmp_path / "default")
    ctxs = [sample_context(i) for i in range(24)] + [CASES["de CHF with QR-bill page"]()]
    (tmp_path / "contexts.pickle").write_bytes(pickle.dumps(ctxs))
    (tmp_path / "render_both_ways.py").write_text(_RENDER_BOTH_WAYS)  # a file: forkserver children import it
    ran = subprocess.run([sys.executable, str(tmp_path / "render_both_ways.py"), str(tmp_path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.splitlines()[-1])
    assert result["host_server"] is True  # the host's forkserver ran before the first render
    assert result["loaded"] == ["weasyprint"]
    assert result["same"] is True
    stats = result["stats"]
    assert len(stats) == 2 and all(s["peak_rss_mib"] < 150 for s in stats.values()), stats
