"""Reliability, security and operations tests: faults, crashes, concurrency, hostile input,
secrets, notifier outages, the UI in a browser, and the daemon on the production instance."""
