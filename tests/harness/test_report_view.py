"""Opening a built allure report in headless Chromium, and what it must show.

A real Chromium renders the real report in CI (`make report`); here a
stand-in binary plays Chromium, so every branch runs without one.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report_view import chromium, main, totals

FAKE_CHROMIUM = """#!/bin/sh
# Writes a PNG for --screenshot=FILE; prints a DOM for --dump-dom.
for arg in "$@"; do
  case "$arg" in
    --screenshot=*) printf 'PNG' > "${arg#--screenshot=}" ;;
    --dump-dom) cat "$FAKE_DOM" ;;
  esac
done
exit "${FAKE_EXIT:-0}"
"""


def make_report(folder: Path, total: int = 3) -> Path:
    (folder / "widgets").mkdir(parents=True)
    statistic = {"failed": 1, "broken": 0, "passed": total - 1, "total": total}
    (folder / "widgets" / "summary.json").write_text(
        json.dumps({"statistic": statistic})
    )
    (folder / "index.html").write_text("<html></html>")
    return folder


@pytest.fixture
def fake_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "fake-chromium"
    binary.write_text(FAKE_CHROMIUM)
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    dom = tmp_path / "dom.html"
    monkeypatch.setenv("CHROMIUM", str(binary))
    monkeypatch.setenv("FAKE_DOM", str(dom))
    return dom


def test_totals_are_the_reports_own(tmp_path: Path) -> None:
    report = make_report(tmp_path / "report", total=5)

    assert totals(report) == {"failed": 1, "broken": 0, "passed": 4, "total": 5}


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


def test_report_that_shows_its_totals_passes_with_a_screenshot(
    tmp_path: Path, fake_chromium: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = make_report(tmp_path / "report")
    fake_chromium.write_text('<div class="summary"><span>3</span> test cases</div>')

    assert main([str(report), "--png", str(tmp_path / "shot.png")]) == 0

    assert (tmp_path / "shot.png").read_text() == "PNG"
    assert capsys.readouterr().out.startswith(
        "report renders in headless Chromium: 1 failed, 2 passed, 3 total; "
    )


def test_report_that_renders_blank_fails(
    tmp_path: Path, fake_chromium: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = make_report(tmp_path / "report")
    fake_chromium.write_text("<body></body>")

    assert main([str(report)]) == 1

    assert "does not show the run's 3 test cases" in capsys.readouterr().err


def test_chromium_that_fails_is_reported_with_its_exit_code(
    tmp_path: Path,
    fake_chromium: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = make_report(tmp_path / "report")
    monkeypatch.setenv("FAKE_EXIT", "3")

    assert main([str(report)]) == 2

    assert "exited 3 rendering http://127.0.0.1:" in capsys.readouterr().err
