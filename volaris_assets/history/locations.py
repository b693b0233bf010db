"""Where the cold tier may live: the settings validator (no fsspec or DuckDB import, so that
validating settings stays cheap in every process)."""

from __future__ import annotations

import importlib.util

# URL schemes of the fsspec filesystems the cold tier is read and written through (s3fs, gcsfs,
# adlfs installed beside fsspec; fsspec's own hdfs goes through pyarrow, so it is not offered);
# a plain path is a local directory.
SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "abfss")
# The package each object-store scheme needs (not a dependency of the project: one at most is).
FILESYSTEM_PACKAGES = {
    "s3": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}


def history_url(text: str) -> str:
    """A directory path or a URL whose scheme is one of `SCHEMES`."""
    value = text.strip()
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise ValueError(f"scheme {scheme}:// is not one of {', '.join(SCHEMES)}")
        rest = value.split("://", 1)[1]
        if not rest.strip("/"):
            raise ValueError("names no bucket or path")
        if "@" in rest.split("/", 1)[0]:
            raise ValueError(
                "carries credentials: give them to the store's own variables "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY...), never in the URL"
            )
        package = FILESYSTEM_PACKAGES.get(scheme)
        if package and importlib.util.find_spec(package) is None:
            raise ValueError(
                f"{scheme}:// needs the {package} package, which is not installed here "
                f"(pip install {package})"
            )
    return value
