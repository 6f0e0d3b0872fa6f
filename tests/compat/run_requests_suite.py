"""Run requests' own test suite against plain requests and with ``observable_session.Session``.

Usage: ``.venv/bin/python tests/compat/run_requests_suite.py`` (``.ci/requests-suite`` does this).

1. Fetch the sdist of the *installed* requests with ``pip download --no-binary :all:
   --no-deps`` into ``.cache/requests-suite/`` (gitignored; reused when present).
2. Build a side venv there (so the test group's pytest plugins never load into this
   project's own suite) with this project installed editable and requests' test group:
   pytest-httpbin, httpbin, trustme, PySocks, pytest-mock, pytest-xdist (+ pytest-timeout).
3. Run ``tests/`` of the sdist three times, each with ``-p requests_suite_plugin`` (the
   network fence, and the swap chosen by ``OBSERVABLE_SESSION_SWAP``): the baseline (plain
   requests), ``compat`` (the Session's most requests-compatible settings) and ``default``
   (the Session's defaults). The three runs go in parallel, each on a few xdist workers.
4. Print the counts and the tests each swapped run lost (passed in the baseline, not in the
   swapped run). Exit 1 when the compat run loses a test not in ``INTENDED_DIFFERENCES``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "requests-suite"
PLUGIN_DIR = Path(__file__).resolve().parent

# Tests of requests' suite the compat run is allowed to lose, each a deliberate difference
# explained in README "Differences from requests" (keep this list short: the target is <= 3).
INTENDED_DIFFERENCES: dict[str, str] = {
    # Mounting an adapter whose max_retries would retry is refused (InvalidConfigError): the
    # session retries attempt by attempt itself, and adapter retries would stack invisibly.
    "tests/test_requests.py::test_urllib3_retries": "a retrying adapter is refused",
}

# The test group of requests (its pyproject's [dependency-groups] test), minus coverage, plus
# pytest-timeout so that a hung test cannot hang CI.
TEST_GROUP = (
    "pytest-httpbin==2.1.0",
    "httpbin~=0.10.0",
    "pytest-mock",
    "trustme",
    "PySocks",
    "pytest>=3,<10",
    "pytest-xdist",
    "pytest-timeout",
)

RUNS = ("baseline", "compat", "default")


def _installed_requests() -> str:
    import requests

    return str(requests.__version__)


def _run(cmd: list[str], **kwargs: object) -> None:
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def fetch_sdist(version: str) -> Path:
    """The extracted sdist of requests ``version``, downloaded once."""
    source = CACHE / f"requests-{version}"
    if (source / "tests").is_dir():
        return source
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"requests-{version}.tar.gz"
    if not archive.exists():
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:"]
        _run([*pip, "--no-deps", f"requests=={version}", "-d", str(CACHE)])
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # refuses links and paths outside CACHE
            tar.extractall(CACHE, filter="data")
        else:  # Python without the filters (3.10.11 and older): members are checked by hand
            for member in tar.getmembers():
                if member.issym() or member.islnk() or ".." in Path(member.name).parts:
                    raise SystemExit(f"unexpected member in the requests sdist: {member.name}")
            tar.extractall(CACHE)
    return source


def side_venv(version: str) -> Path:
    """A venv with this project (editable), requests ``version`` and requests' test group."""
    venv = CACHE / "venv"
    python = venv / "bin" / "python"
    # A new stamp (so a fresh venv) whenever the project's dependencies or the group change.
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + repr(TEST_GROUP).encode())
    stamp = venv / f".ready-{version}-{digest.hexdigest()[:12]}"
    if stamp.exists():
        return python
    _run([sys.executable, "-m", "venv", "--clear", str(venv)])
    _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    install = [str(python), "-m", "pip", "install", "-q", "-e", str(ROOT)]
    _run([*install, f"requests=={version}", *TEST_GROUP])
    stamp.touch()
    return python


def start(python: Path, source: Path, run: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start one run of the suite; its results go to a JUnit XML file."""
    report = CACHE / f"{run}.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PLUGIN_DIR)
    env["OBSERVABLE_SESSION_SWAP"] = "" if run == "baseline" else run
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        env.pop(var, None)
        env.pop(var.upper(), None)
    cmd = [str(python), "-m", "pytest", "tests", "-q", "-p", "requests_suite_plugin"]
    cmd += ["-p", "no:cacheprovider", "-o", "addopts=", "--timeout", "60"]
    # Most of the suite's time is waiting (delays, timeouts, a single-threaded httpbin per
    # worker held by a slow test): tests handed out one at a time to a few workers, so slow
    # neighbours do not queue behind each other, cut a run from minutes to under one.
    cmd += ["-n", "4", "--dist", "load", "--maxschedchunk", "1"]
    cmd += [f"--junitxml={report}"]
    log = (CACHE / f"{run}.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, report


def outcomes(report: Path) -> dict[str, str]:
    """Test id -> passed/failed/error/skipped, from a JUnit XML report."""
    results: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        module = (case.get("classname") or "").split(".")
        name = case.get("name") or ""
        path = "/".join(p for p in module if not p[:1].isupper()) + ".py"
        classes = [p for p in module if p[:1].isupper()]
        test_id = "::".join([path, *classes, name])
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                state = child.tag
        results[test_id] = state
    return results


def main() -> int:
    """Fetch, install, run three times, compare; exit 1 on an unintended loss."""
    started = time.monotonic()
    version = _installed_requests()
    source = fetch_sdist(version)
    python = side_venv(version)
    procs = {run: start(python, source, run) for run in RUNS}
    results: dict[str, dict[str, str]] = {}
    for run, (proc, report) in procs.items():
        proc.wait()
        if not report.exists():
            print(f"{run}: no report; see {CACHE / (run + '.log')}")
            return 1
        results[run] = outcomes(report)
    base = results["baseline"]
    passed = {run: {t for t, s in res.items() if s == "passed"} for run, res in results.items()}
    print(f"requests {version}: its own suite, {len(base)} tests, fenced to the loopback")
    for run in RUNS:
        print(f"  {run:<9} {len(passed[run]):>4} passed")
    failed = False
    for run in ("compat", "default"):
        lost = sorted(passed["baseline"] - passed[run])
        print(f"\n{run}: {len(lost)} lost")
        for test_id in lost:
            intended = test_id in INTENDED_DIFFERENCES
            mark = "intended" if intended else "LOST"
            print(f"  [{mark}] {test_id}")
            if run == "compat" and not intended:
                failed = True
    stale = sorted(set(INTENDED_DIFFERENCES) - (passed["baseline"] - passed["compat"]))
    for test_id in stale:
        print(f"\nnote: intended difference no longer lost (remove it from the list): {test_id}")
    print(f"\n{time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
