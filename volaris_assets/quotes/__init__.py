"""Real-time quotes: the `quotes` asset, its check and its market-hours schedule."""
