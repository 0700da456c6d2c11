"""Benchmark: bulk letter rendering the fast way against the naive way.

The fast way is what the pipeline does (``render_many``: a process pool,
one FontConfiguration, one parsed letter.css and one compiled template cache
per worker). The naive way is the obvious loop a first version would have:
per letter a fresh Jinja environment and ``weasyprint.HTML(string=...)
.write_pdf(stylesheets=[CSS(filename=letter.css)])``, in one process. Both
render the same templates to the same HTML, so the ratio measures only the
reuse and the parallelism.

Run: ``python -m pipeline.render.bench [n] [workers]``.
``sample_context`` doubles as test and preview data.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from .pdf import render_many
from .templates import TemplateSet

TEMPLATE_ROOT = Path(__file__).resolve().parents[2] / "templates"

_LOCALES = ["de_DE", "en_GB", "fr_FR", "nl_NL", "da_DK", "de_AT", "en_IE"]
_TEMPLATES = [(1, "1st reminder", "reminder", "0.00"), (2, "2nd reminder", "notice", "5.00"), (3, "final notice", "final", "15.00")]
_NAMES = ["Müller & Söhne GmbH", "Jane O'Neill", "Societé Générale d'Électricité", "Jan de Vries", "Søren Kierkegaard ApS", "Li Wei", "Anna-Lena Schröder"]
_CITIES = [("10115", "Berlin"), ("SW1A 1AA", "London"), ("75001", "Paris"), ("1012 AB", "Amsterdam"), ("1050", "København K"), ("1010", "Wien"), ("D02 X285", "Dublin")]


def sample_context(i: int = 0, as_of: date = date(2026, 5, 10), locale: str | None = None, template: str | None = None) -> dict[str, Any]:
    """A realistic, varied document context (the lead's interface), deterministic in ``i``."""
    locale = locale or _LOCALES[i % len(_LOCALES)]
    level_no, level_name, default_template, fee = _TEMPLATES[i % len(_TEMPLATES)]
    fee = Decimal(fee)
    n_invoices = 1 + i % 4
    invoices = []
    for k in range(n_invoices):
        inv_date = as_of - timedelta(days=30 * (n_invoices - k) + 14 + i % 9)
        due = inv_date + timedelta(days=14)
        amount = (Decimal("1234.56") + Decimal(i * 37 + k * 101) / 7).quantize(Decimal("0.01"))
        open_amount = amount if k else (amount - Decimal("100.00")).quantize(Decimal("0.01"))
        invoices.append({
            "invoice_number": f"INV-2026-{i:05d}-{k}",
            "invoice_date": inv_date,
            "due_date": due,
            "amount": amount,
            "open_amount": open_amount,
            "days_overdue": (as_of - due).days,
        })
    principal = sum((inv["open_amount"] for inv in invoices), Decimal("0.00"))
    interest = Decimal("0.00") if level_no < 3 else (principal * Decimal("0.0075")).quantize(Decimal("0.01"))
    postal, city = _CITIES[i % len(_CITIES)]
    customer_id = f"C{i:06d}"
    contract_id = f"CT{i:06d}"
    return {
        "action_key": f"ct-{contract_id}-{as_of:%Y%m%d}/L{level_no}/{template or default_template}",
        "template_set": "default",
        "template": template or default_template,
        "locale": locale,
        "as_of": as_of,
        "level": {"no": level_no, "name": level_name, "due_date": as_of + timedelta(days=10), "fee": fee},
        "organization": {
            "name": "Acme Energie GmbH",
            "address_lines": ["Hauptstraße 1", "10117 Berlin"],
            "email": "billing@acme-energie.example",
            "iban": "DE89 3704 0044 0532 0130 00",
            "bic": "COBADEFFXXX",
            "bank": "Commerzbank",
        },
        "customer": {
            "customer_id": customer_id,
            "name": _NAMES[i % len(_NAMES)],
            "email": f"customer{i}@example.org",
            "locale": locale,
            "country": locale[-2:],
            "address_line1": f"Teststraße {i % 200 + 1}",
            "address_line2": "c/o Buchhaltung" if i % 3 == 0 else None,
            "postal_code": postal,
            "city": city,
        },
        "contract": {"contract_id": contract_id, "customer_id": customer_id, "currency": "EUR", "status": "active"},
        "invoice": invoices[0],
        "invoices": invoices,
        "amounts": {"currency": "EUR", "principal": principal, "fees": fee, "interest": interest, "total": principal + fee + interest},
        # what a failed-collection document adds (pipeline/failed_collections/context.py); unused by dunning
        "collection": _sample_collection(i, as_of, invoices[0], principal, fee),
    }


def _sample_collection(i: int, as_of: date, invoice: dict[str, Any], principal: Decimal,
                       charges: Decimal) -> dict[str, Any]:
    """Alternates payment link and transfer, with and without a new-mandate address and a reason code."""
    case_key = f"cc-P{i:06d}"
    failure_type, code, reason = [("soft", "AM04", "Insufficient funds on the debtor account"),
                                  ("hard", "MS02", "Refused by the debtor without a reason"),
                                  ("technical", None, "unknown reason code")][i % 3]
    link = i % 2 == 0
    return {
        "case_key": case_key, "failure_type": failure_type, "reason_code": code, "reason": reason,
        "payment": {"payment_id": f"P{i:06d}", "amount": invoice["amount"], "failed_on": as_of - timedelta(days=3),
                    "mandate_id": f"MD-{i:06d}" if i % 3 != 2 else None},
        "outstanding": principal, "admin_charges": charges, "total": principal + charges,
        "method": "payment_link" if link else "transfer",
        "payment_link": f"https://pay.example.com/c/{case_key}?amount={principal + charges}" if link else None,
        "new_mandate_url": f"https://sign.example.com/{case_key}" if link else None,
        "pay_by": as_of + timedelta(days=14),
        "transfer": {"account_holder": "Acme Energie GmbH", "iban": "DE89 3704 0044 0532 0130 00",
                     "bic": "COBADEFFXXX", "bank": "Commerzbank", "reference": case_key},
    }


def _naive_render(ctx: dict[str, Any], root: Path) -> bytes:
    import weasyprint

    templates = TemplateSet(root, ctx["template_set"])  # fresh Jinja env, templates recompiled
    return weasyprint.HTML(string=templates.render_letter_html(ctx), base_url=str(templates.folder)).write_pdf(
        stylesheets=[weasyprint.CSS(filename=str(templates.css_path))]  # parsed again, new FontConfiguration
    )


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def bench_render(n: int = 1000, workers: int = 2, root: Path = TEMPLATE_ROOT) -> dict[str, Any]:
    """Wall-clock throughput of both ways, plus CPU time per letter.

    The CPU figures (worker CPU incl. start-up, against this process's CPU
    for the naive loop) show the gain from reuse alone and stay meaningful
    when other processes compete for the cores and distort the wall clock.
    """
    ctxs = [sample_context(i) for i in range(n)]

    stats: dict[int, dict[str, float]] = {}
    start = time.perf_counter()  # includes pool start-up: it is a real cost
    fast_bytes = sum(len(pdf) for _, pdf in render_many(ctxs, workers, root, stats=stats))
    fast_s = time.perf_counter() - start
    fast_cpu = sum(s["cpu_s"] for s in stats.values())

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
        "peak_rss_mib_per_worker": round(max(s["peak_rss_mib"] for s in stats.values()), 1),
        "naive_process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "avg_pdf_kib": round(fast_bytes / n / 1024, 1),
        "naive_avg_pdf_kib": round(naive_bytes / n / 1024, 1),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(bench_render(*args), indent=2))
