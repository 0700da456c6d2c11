"""Benchmark: bulk letter rendering the fast way against the naive way.

The fast way is what the pipeline does (``render_many``: a process pool
whose workers fork from the renderer's own forkserver, which has WeasyPrint imported, one
FontConfiguration, one parsed letter.css, one compiled template cache and
the letters' static layers (letterhead, marks, footer) laid out once per
worker). The naive way is the obvious loop a first version would have: per
letter a fresh Jinja environment and ``weasyprint.HTML(string=...)
.write_pdf(stylesheets=[CSS(filename=letter.css)])``, in one process. Both
render the same templates to the same HTML (the naive way renders the
static layer's blocks in place: its markers are HTML comments) and give the
same pages, so the ratio measures only the reuse and the parallelism.

Run: ``python -m bench.render [n] [workers]``. The letters are
``pipeline.delivery.render.samples.sample_context``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any
from pipeline.delivery.render.pdf import render_many
from pipeline.delivery.render.templates import TemplateSet
from pipeline.delivery.render.samples import TEMPLATE_ROOT, sample_context


def _naive_render(ctx: dict[str, Any], root: Path) -> bytes:
    import weasyprint

    templates = TemplateSet(root, ctx["template_set"])  # fresh Jinja env, templates recompiled
    return weasyprint.HTML(string=templates.render_letter_html(ctx), base_url=str(templates.folder)).write_pdf(
        stylesheets=[weasyprint.CSS(filename=str(templates.css_path))]  # parsed again, new FontConfiguration
    )


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _forkserver_cpu_s() -> float:
    """CPU seconds of the renderer's forkserver so far (it imports WeasyPrint once for all workers,
    so the fast way's CPU includes it), 0 if it does not run yet or /proc is not there."""
    from pipeline.delivery.render.pdf import _RENDER_FORKSERVER

    pid = _RENDER_FORKSERVER._forkserver_pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def bench_render(n: int = 1000, workers: int = 2, root: Path = TEMPLATE_ROOT) -> dict[str, Any]:
    """Wall-clock throughput of both ways, plus CPU time per letter.

    The CPU figures (worker CPU incl. start-up, plus the forkserver's during
    the run, against this process's CPU for the naive loop, which includes
    importing WeasyPrint unless something did before) show the gain from reuse alone and stay
    meaningful when other processes compete for the cores and distort the
    wall clock; the load average at start and end says how much they did.
    """
    load_at_start = os.getloadavg()[0]
    ctxs = [sample_context(i) for i in range(n)]

    stats: dict[int, dict[str, float]] = {}
    forkserver_cpu = _forkserver_cpu_s()  # 0 unless an earlier stage started it
    start = time.perf_counter()  # includes pool start-up: it is a real cost
    fast_bytes = sum(len(pdf) for _, pdf in render_many(ctxs, workers, root, stats=stats))
    fast_s = time.perf_counter() - start
    forkserver_cpu = _forkserver_cpu_s() - forkserver_cpu
    fast_cpu = sum(s["cpu_s"] for s in stats.values()) + forkserver_cpu

    start, cpu0 = time.perf_counter(), _cpu_s()
    naive_bytes = sum(len(_naive_render(ctx, root)) for ctx in ctxs)
    naive_s, naive_cpu = time.perf_counter() - start, _cpu_s() - cpu0

    return {
        "letters": n,
        "workers": workers,
        "fast_seconds": round(fast_s, 2),
        "naive_seconds": round(naive_s, 2),
        "fast_letters_per_s": round(n / fast_s, 1),
        "naive_letters_per_s": round(n / naive_s, 1),
        "ratio": round(naive_s / fast_s, 2),
        "fast_cpu_ms_per_letter": round(fast_cpu / n * 1000, 1),
        "naive_cpu_ms_per_letter": round(naive_cpu / n * 1000, 1),
        "cpu_ratio": round(naive_cpu / fast_cpu, 2),
        "forkserver_cpu_s": round(forkserver_cpu, 2),
        "peak_rss_mib_per_worker": round(max(s["peak_rss_mib"] for s in stats.values()), 1),
        "naive_process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "avg_pdf_kib": round(fast_bytes / n / 1024, 1),
        "naive_avg_pdf_kib": round(naive_bytes / n / 1024, 1),
        "load_avg_1min_at_start": round(load_at_start, 2),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(bench_render(*args), indent=2))
