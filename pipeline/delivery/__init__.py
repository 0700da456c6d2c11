"""Documents and dispatch: rendering (templates, PDF), channels (SMTP, HTTP, print), the outbox, the dispatch journal, previews."""
