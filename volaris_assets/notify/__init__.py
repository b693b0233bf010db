"""Discord notification plumbing behind `volaris_assets.resources.notifier.DiscordNotifier`.

`embeds` builds the message within Discord's limits, `delivery` posts it and honours rate limits,
`dedup` remembers what was already sent. None of it imports Dagster, so it can be tested and
reused (e.g. by the benchmarks) without a Dagster context.
"""
