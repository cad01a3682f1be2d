"""Opening a built allure report in headless Chromium, and what it must show.

A real Chromium renders the real report in CI (`make report`); here a
stand-in binary plays Chromium, so every branch runs without one. The DOM it
prints is cut down from what Chromium makes of allure 2's overview and
Suites pages.
"""

from __future__ import annotations

import json
import stat
import struct
import zlib
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report_view import (
    chromium,
    counted,
    main,
    shown_on_overview,
    shown_on_suites,
    totals,
)

FAKE_CHROMIUM = """#!/bin/sh
# Copies $FAKE_PNG for --screenshot=FILE; prints $FAKE_DOM for --dump-dom, or
# $FAKE_SUITES_DOM when the URL is the Suites page.
dom="$FAKE_DOM"
for arg in "$@"; do
  case "$arg" in
    --screenshot=*) cp "$FAKE_PNG" "${arg#--screenshot=}" ;;
    *'#suites') dom="$FAKE_SUITES_DOM" ;;
  esac
done
for arg in "$@"; do
  if [ "$arg" = --dump-dom ]; then cat "$dom"; fi
done
exit "${FAKE_EXIT:-0}"
"""

RUN = {"passed": 2, "failed": 1, "broken": 1, "skipped": 1}


def overview(total: int, statuses: list[str]) -> str:
    arcs = "".join(f'<path class="chart__arc chart__arc_status_{s}"></path>' for s in statuses)  # fmt: skip
    return (
        '<div class="widget island" data-id="summary"><div class="widget__body">'
        '<div class="summary-widget__stats splash">'
        f'<div class="splash__title">{total}</div>'
        '<div class="splash__subtitle">test cases</div></div>'
        f'<svg class="chart__svg"><g class="chart__plot">{arcs}'
        '<text class="chart__caption">50%</text></g></svg></div></div>'
        '<div class="widget island" data-id="suites"><div class="bar">'
        '<div class="bar__fill bar__fill_status_passed">7</div></div></div>'
    )


def suites(counts: dict[str, int]) -> str:
    items = "".join(
        f'<div class="status-toggle__item"><span class="y-label y-label_status_'
        f'{status}" data-status="{status}" data-tooltip="Hide {status}">{n}</span>'
        "</div>"
        for status, n in counts.items()
    )
    return (
        '<div class="status-toggle"><div class="status-toggle__items">'
        f'<span class="status-toggle__label">Status:</span>{items}</div></div>'
        '<div class="node" data-status="passed"><span>99</span></div>'
    )


def png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(header))
        + b"IHDR"
        + header
        + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    )


def make_report(folder: Path, counts: dict[str, int]) -> Path:
    (folder / "widgets").mkdir(parents=True)
    statistic = {**counts, "unknown": 0, "total": sum(counts.values())}
    (folder / "widgets" / "summary.json").write_text(
        json.dumps({"statistic": statistic})
    )
    (folder / "index.html").write_text("<html></html>")
    return folder


def make_results(folder: Path, counts: dict[str, int]) -> Path:
    folder.mkdir(parents=True)
    n = 0
    for status, times in counts.items():
        for _ in range(times):
            n += 1
            result = {"uuid": f"u{n}", "historyId": f"h{n}", "status": status,
                      "start": n, "stop": n + 1}  # fmt: skip
            (folder / f"u{n}-result.json").write_text(json.dumps(result))
    (folder / "c1-container.json").write_text("{}")
    return folder


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A reports folder as `make report` leaves it: results and the report."""
    make_results(tmp_path / "allure-results", RUN)
    make_report(tmp_path / "allure-report", RUN)
    return tmp_path


@pytest.fixture
def fake_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in Chromium, showing the run as it is; returns its folder."""
    pages = tmp_path / "chromium"
    pages.mkdir()
    binary = pages / "fake-chromium"
    binary.write_text(FAKE_CHROMIUM)
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    (pages / "overview.html").write_text(overview(5, list(RUN)))
    (pages / "suites.html").write_text(suites({**RUN, "unknown": 0}))
    (pages / "shot.png").write_bytes(png(1440, 1000))
    monkeypatch.setenv("CHROMIUM", str(binary))
    monkeypatch.setenv("FAKE_DOM", str(pages / "overview.html"))
    monkeypatch.setenv("FAKE_SUITES_DOM", str(pages / "suites.html"))
    monkeypatch.setenv("FAKE_PNG", str(pages / "shot.png"))
    return pages


def check(run_folder: Path) -> int:
    report = run_folder / "allure-report"
    return main([str(report), "--png", str(run_folder / "shot.png")])


def test_totals_are_the_reports_own(tmp_path: Path) -> None:
    report = make_report(tmp_path / "report", {"failed": 1, "passed": 4})

    assert totals(report) == {
        "passed": 4, "failed": 1, "broken": 0, "skipped": 0, "unknown": 0, "total": 5
    }  # fmt: skip


def test_results_count_a_rerun_test_once_with_its_last_status(tmp_path: Path) -> None:
    results = make_results(tmp_path / "results", {"passed": 1})
    for n, status in ((10, "failed"), (20, "passed"), (15, "broken")):
        rerun = {"uuid": f"r{n}", "historyId": "again", "status": status,
                 "start": n, "stop": n + 1}  # fmt: skip
        (results / f"r{n}-result.json").write_text(json.dumps(rerun))

    assert counted(results) == {
        "passed": 2, "failed": 0, "broken": 0, "skipped": 0, "unknown": 0, "total": 2
    }  # fmt: skip


def test_pages_are_read_as_chromium_renders_them() -> None:
    assert shown_on_overview(overview(7, ["failed", "passed"])) == (
        7, {"failed", "passed"}
    )  # fmt: skip
    assert shown_on_overview("<body></body>") == (None, set())
    assert shown_on_suites(suites({"failed": 3, "passed": 4})) == {
        "failed": 3, "passed": 4
    }  # fmt: skip
    assert shown_on_suites("<body></body>") == {}


def test_a_folder_that_is_no_report_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"is not an allure report .*`make report`"):
        totals(tmp_path)


def test_without_chromium_the_error_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(HarnessError, match="apt-get install -y chromium"):
        chromium()


def test_report_that_shows_its_run_passes_with_a_screenshot(
    run_folder: Path, fake_chromium: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(run_folder) == 0

    assert (run_folder / "shot.png").read_bytes() == png(1440, 1000)
    assert capsys.readouterr().out == (
        "report renders in headless Chromium: 2 passed, 1 failed, 1 broken, "
        f"1 skipped, 5 total; screenshot: {run_folder / 'shot.png'}\n"
    )


def test_report_built_from_other_results_fails(
    run_folder: Path, fake_chromium: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_folder / "allure-results" / "u3-result.json").unlink()  # a failed test

    assert check(run_folder) == 1

    assert capsys.readouterr().err == (
        "error: the report's summary says 2 passed, 1 failed, 1 broken, 1 skipped, "
        f"5 total, but the results in {run_folder / 'allure-results'}"
        " hold 2 passed, 1 broken, 1 skipped, 4 total: build the report from them "
        "again (make report)\n"
    )


@pytest.mark.parametrize(
    ("page", "content", "message"),
    [
        ("overview.html", overview(4, list(RUN)),
         "error: the overview shows 4 test cases, not the run's 5"),
        ("overview.html", overview(5, ["passed", "failed"]),
         "error: the overview's chart shows ['failed', 'passed'], not the run's "
         "statuses ['broken', 'failed', 'passed', 'skipped']"),
        ("suites.html", suites({**RUN, "failed": 0, "unknown": 0}),
         "error: the Suites page shows 0 failed, not the run's 1"),
        ("suites.html", suites({"passed": 2}),
         "error: the Suites page shows None failed, not the run's 1"),
    ],
)  # fmt: skip
def test_report_that_shows_other_counts_fails(
    run_folder: Path,
    fake_chromium: Path,
    capsys: pytest.CaptureFixture[str],
    page: str,
    content: str,
    message: str,
) -> None:
    (fake_chromium / page).write_text(content)

    assert check(run_folder) == 1

    err = capsys.readouterr().err.splitlines()
    assert message in err
    assert err[-1] == f"the rendered overview is in {run_folder / 'shot.png'}"


def test_report_that_renders_blank_fails(
    run_folder: Path, fake_chromium: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_chromium / "overview.html").write_text("<body></body>")
    (fake_chromium / "suites.html").write_text("<body></body>")

    assert check(run_folder) == 1

    err = capsys.readouterr().err
    assert "error: the overview shows None test cases, not the run's 5" in err
    assert "error: the Suites page shows None passed, not the run's 2" in err


@pytest.mark.parametrize(
    ("shot", "message"),
    [
        (b"PNG", "is not a PNG image"),
        (png(800, 600), "is 800x600 pixels, not the window's (1440, 1000)"),
    ],
)
def test_screenshot_that_is_no_picture_of_the_window_fails(
    run_folder: Path,
    fake_chromium: Path,
    capsys: pytest.CaptureFixture[str],
    shot: bytes,
    message: str,
) -> None:
    (fake_chromium / "shot.png").write_bytes(shot)

    assert check(run_folder) == 1

    assert f"error: {run_folder / 'shot.png'} {message}\n" in capsys.readouterr().err


def test_missing_results_name_the_option(
    run_folder: Path, fake_chromium: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_folder / "allure-report"

    assert main([str(report), "--results", str(run_folder / "none")]) == 2

    assert capsys.readouterr().err == (
        f"error: no allure results in {run_folder / 'none'}; pass the folder the "
        "report was built from with --results\n"
    )


def test_chromium_that_fails_is_reported_with_its_exit_code(
    run_folder: Path,
    fake_chromium: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_EXIT", "3")

    assert check(run_folder) == 2

    assert "exited 3 rendering http://127.0.0.1:" in capsys.readouterr().err


def test_a_result_that_is_not_json_is_named(tmp_path: Path) -> None:
    results = make_results(tmp_path / "results", {"passed": 1})
    (results / "bad-result.json").write_text("{")

    with pytest.raises(HarnessError, match=r"bad-result\.json is not an allure result"):
        counted(results)
