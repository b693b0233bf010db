"""What /proc says about a process: the small box names its run workers by pid and start time,
and its forks share the daemon's command line, so a parent is how to tell them apart."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name, the state first (`proc(5)` numbers it
    3), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces


def parent_pid(pid: int) -> int:
    """`pid`'s parent (0 once `pid` is gone)."""
    fields = stat_fields(pid)
    return int(fields[1]) if fields else 0


def started_at(pid: int) -> str | None:
    """When the process started (clock ticks after boot), or None when it is gone or a zombie:
    with the pid, a name for the process that no later one shares."""
    fields = stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return fields[19]
