"""The daily step and its run modes: a live day (plan -> dispatch -> publish), backfills and simulations."""
