"""The cold tier's files are all there and readable; a bad one is named, the rest still serve."""

import dagster as dg

from volaris_assets.history.assets import option_history
from volaris_assets.history.resource import HistoryResource
from volaris_assets.ingest.range_metadata import with_range


@dg.asset_check(
    asset=option_history,
    name="cold_files_readable",
    partitions_def=option_history.partitions_def,
    description="Every compacted session's file exists and its footer reads with the row count "
    "its manifest recorded; the checked sessions' files are read whole and their key checksums "
    "compared. A missing or corrupt file is named; `open_history` leaves it out and answers "
    "from the rest.",
)
def cold_files_readable(
    context: dg.AssetCheckExecutionContext, history: HistoryResource
) -> dg.AssetCheckResult:
    store = history.store()
    manifests = store.manifests()
    keys = context.partition_key_range
    checked = {m.session for m in manifests if keys.start <= m.session <= keys.end}
    problems = [p for m in manifests if (p := store.verify(m, full=m.session in checked))]
    result = dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) if problems else f"{len(manifests)} session files read",
        metadata={
            "sessions": dg.MetadataValue.int(len(manifests)),
            "bad_files": dg.MetadataValue.int(len(problems)),
            "bad_file_names": dg.MetadataValue.text("\n".join(problems) or "none"),
        },
    )
    return with_range(context, result)


history_checks = [cold_files_readable]
