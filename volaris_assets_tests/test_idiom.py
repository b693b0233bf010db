"""Current Dagster idiom: the code location loads without superseded or deprecated APIs, its beta
and preview features are the ones the README lists, and `dg` works on the project as laid out.

Each runs in a fresh interpreter, as a user's `dg dev` or import does: warnings are printed once
per process, so an in-process import that an earlier test already did would see none.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent

# Supersession warnings are FutureWarnings: both kinds are errors, anything else is recorded.
LOAD = """
import json, warnings
warnings.resetwarnings()
warnings.simplefilter("always")
warnings.simplefilter("error", DeprecationWarning)
warnings.simplefilter("error", FutureWarning)
warnings.showwarning = lambda message, category, *args, **kwargs: print(
    json.dumps([category.__name__, str(message)])
)
import volaris_assets.definitions
"""


def _env() -> dict[str, str]:
    """The user's environment as `make dev` gives it: the project's virtualenv named, no
    DAGSTER_HOME of the test run's."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return {**env, "VIRTUAL_ENV": str(VENV.parent)}


def _readme_features() -> list[str]:
    """The features listed in the README's section on beta and preview features (the first
    backquoted text of each table row)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Beta and preview Dagster features", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `` (.+?) ``", section, flags=re.MULTILINE)


def test_loading_the_code_location_warns_only_of_features_the_readme_lists():
    result = subprocess.run(
        [sys.executable, "-c", LOAD],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]  # a Deprecation/Supersession raised
    warned = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    features = _readme_features()
    assert features, "the README lists no beta/preview features"
    unlisted = {
        f"{category}: {message[:100]}"
        for category, message in warned
        if not any(feature in message for feature in features)
    }
    assert not unlisted, unlisted
    assert {c for c, _ in warned} <= {"BetaWarning", "PreviewWarning"}


@pytest.fixture(scope="module")
def dg_runs() -> dict[str, subprocess.CompletedProcess]:
    """`dg check defs` and `dg list defs --json`, started together: each loads the location in
    a process of its own (~25 s), and two cores run both in the time of one."""
    commands = {"check": ["check", "defs"], "list": ["list", "defs", "--json"]}
    started = {
        name: subprocess.Popen(
            [str(VENV / "dg"), *args],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


def test_dg_checks_the_project_as_laid_out(dg_runs):
    """`dg check defs` loads the location through [tool.dg]; like `dagster dev` it refuses a
    module exposing more than one Definitions object."""
    result = dg_runs["check"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_lists_the_definitions(dg_runs):
    result = dg_runs["list"]
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads(result.stdout[result.stdout.index("{") :])
    assets = {a["asset_key"] for a in listed["assets"]}
    assert {"daily_bars", "option_chains", "iv_metrics", "wheel_premiums"} <= assets
    assert "freshness_alert_sensor" in {s["name"] for s in listed["sensors"]}
