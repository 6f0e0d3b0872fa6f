"""The demo's job lifecycle and its waits: upstream behaviour, waterfall, JSON, checks."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from observable_session import Session, WaitFailed
from observable_session._demo._upstream import JOB_RETRY_AFTER_S, MAX_SHOTS, DemoUpstream

from .test_demo import Run, _run_demo


@pytest.fixture
def demo_upstream() -> Any:
    """The embedded upstream on free ports."""
    with DemoUpstream() as upstream:
        yield upstream


def _api(url: str) -> Session:
    # Enough retries for the status route's flaky 503s (at most three per path).
    return Session(base_url=url, retries_total=3, backoff_factor=0, sleep=lambda s: None)


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_submit_answers_202_with_location_and_retry_after(
    demo_upstream: DemoUpstream, prefix: str
) -> None:
    """A submit is accepted (202) with the status URL under the same prefix and Retry-After."""
    with _api(demo_upstream.url + prefix) as api:
        response = api.post("/jobs", json={"name": "lifecycle", "shots": 10})
    body = response.json()
    assert response.status_code == 202
    assert body["state"] == "QUEUED" and body["id"] == body["job_id"]
    assert response.headers["Location"] == f"{prefix}/jobs/{body['id']}"
    assert response.headers["Retry-After"] == str(JOB_RETRY_AFTER_S)


def test_jobs_run_then_finish(demo_upstream: DemoUpstream) -> None:
    """QUEUED on submit, RUNNING on the first status read, DONE from the next on."""
    with _api(demo_upstream.url) as api:
        job = api.post("/jobs", json={"name": "runs", "shots": 10}).json()
        states = [
            api.get("/jobs/{job_id}", path_params={"job_id": job["id"]}).json()["state"]
            for _ in range(3)
        ]
    assert states == ["RUNNING", "DONE", "DONE"]


def test_jobs_with_too_many_shots_fail(demo_upstream: DemoUpstream) -> None:
    """A job over MAX_SHOTS ends FAILED, and wait's fail_when sees it."""
    with _api(demo_upstream.url) as api:
        submitted = api.post("/jobs", json={"name": "big", "shots": MAX_SHOTS + 1})
        with pytest.raises(WaitFailed) as info:
            api.wait(
                submitted,
                until=lambda r: r.json()["state"] == "DONE",
                fail_when=lambda r: r.json()["state"] == "FAILED",
                interval=0,
            )
    assert info.value.polls == 2
    assert info.value.response is not None and "shots" in info.value.response.json()["error"]


def test_resubmitting_a_name_makes_a_new_job(demo_upstream: DemoUpstream) -> None:
    """Two submits of one name are two jobs (the README example runs twice in a row)."""
    with _api(demo_upstream.url) as api:
        first = api.post("/jobs", json={"shots": 1}).json()["id"]
        second = api.post("/jobs", json={"shots": 1}).json()["id"]
    assert first != second


@pytest.fixture(scope="module")
def wait_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A text run whose plan submits jobs the workload waits for."""
    log = tmp_path_factory.mktemp("demo-waits") / "log.jsonl"
    return _run_demo(["demo", "--requests", "60", "--seed", "1"], log, columns=120)


@pytest.fixture(scope="module")
def wait_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON document of a run with waits."""
    log = tmp_path_factory.mktemp("demo-waits-json") / "log.jsonl"
    run = _run_demo(["demo", "--requests", "60", "--seed", "3", "--json"], log)
    assert run.code == 0, run.err
    document: dict[str, Any] = json.loads(run.out)
    return document


def test_text_run_draws_a_wait(wait_run: Run) -> None:
    """The wait waterfall: the WAIT span, polls, a retried poll's attempts, the pauses."""
    assert wait_run.code == 0, wait_run.err
    out = wait_run.out
    assert "Waterfall of one wait: WAIT /jobs/{job_id}" in out
    section = out[out.index("Waterfall of one wait") :]
    section = section[: section.index("pausing before the next poll")]
    assert "  poll 1 " in section and "  poll 2 " in section
    assert "    attempt 2 " in section  # the drawn wait had a retried poll
    assert "pause " in section and " waited" in section
    assert "Waited for " in out


def test_text_run_checks_the_waits(wait_run: Run) -> None:
    """The demo checks that the workload's waits match the WAIT spans."""
    line = next(ln for ln in wait_run.out.splitlines() if "WAIT spans" in ln)
    assert line.strip().startswith("✓")


def test_json_waits_add_up(wait_document: dict[str, Any]) -> None:
    """Waits, polls and outcomes in --json, and a wait waterfall laid out in order."""
    waits = wait_document["waits"]
    assert waits["waits"] > 0
    assert sum(waits["outcomes"].values()) == waits["waits"]
    assert waits["polls"] >= waits["waits"]
    assert set(waits["outcomes"]) <= {"done", "failed", "timeout", "error"}
    polls = waits["waterfall"]["polls"]
    assert len(polls) >= 1
    for before, after in itertools.pairwise(polls):
        end = before["start_ms"] + before["duration_ms"]
        assert after["start_ms"] >= end
        assert after["start_ms"] - end >= before["pause_ms"] * 0.95
    assert all(c["ok"] for c in wait_document["checks"])
    assert wait_document["ok"] is True


def test_no_wait_section_without_waits(tmp_path: Path) -> None:
    """A run too short to submit a job draws no wait and claims none."""
    run = _run_demo(["demo", "--requests", "1", "--seed", "2"], tmp_path / "log.jsonl")
    assert run.code == 0, run.err
    if "Waited for " not in run.out:
        assert "Waterfall of one wait" not in run.out
