"""Imported by the forkserver of `warm_processes` only: lays out one line of text, so that the system's
font set is loaded once in the server rather than once in every child it forks."""

from weasyprint import HTML

HTML(string="<p>warm</p>").render()
