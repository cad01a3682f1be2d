"""Open a built allure report in headless Chromium: a screenshot, and a check.

    python -m harness.report_view reports/allure-report [--results DIR] [--png FILE]

The report is a JavaScript application that fetches its data, so it is
served over HTTP on loopback (file:// would not load). It must count what
the allure results it was built from hold (``--results``; by default the
``allure-results`` folder beside the report), test by test, status by
status:

- the report's own summary (``widgets/summary.json``) must say so, or the
  report is stale or was built from other results;
- the overview page, as Chromium renders it, must show the total and a slice
  of its chart for each status that occurs; the screenshot is taken in the
  same render, so it pictures the page that was checked;
- the Suites page, rendered too, must show the count of every status.

So a blank, broken or stale report fails rather than producing a picture of
nothing. Needs Chromium (Debian: ``apt-get install -y chromium``);
``CHROMIUM`` names another binary.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RENDER_BUDGET_MS = 15_000  # virtual time Chromium gives the page's scripts
WINDOW = (1440, 1000)  # the screenshot's size in pixels
STATUSES = ("passed", "failed", "broken", "skipped", "unknown")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    """The Chromium binary: $CHROMIUM, else the first of CANDIDATES on PATH."""
    named = os.environ.get("CHROMIUM")
    found = named or next(filter(None, map(shutil.which, CANDIDATES)), None)
    if not found:
        raise HarnessError(
            "no Chromium found (looked for " + ", ".join(CANDIDATES) + "); install "
            "it (Debian: apt-get install -y chromium) or set CHROMIUM to its path"
        )
    return found


def counted(results: Path) -> dict[str, int]:
    """The run's counts by status, from its allure results, counted as allure
    counts them: a test that ran more than once (same ``historyId``) counts
    once, with the status of its last run."""
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted(results.glob("*-result.json")):
        try:
            result = json.loads(path.read_text())
        except ValueError as exc:
            raise HarnessError(f"{path} is not an allure result: {exc}") from exc
        key = str(result.get("historyId") or result.get("uuid") or path.name)
        if key not in latest or _ended(result) >= _ended(latest[key]):
            latest[key] = result
    if not latest:
        raise HarnessError(
            f"no allure results in {results}; pass the folder the report was built "
            "from with --results"
        )
    counts = dict.fromkeys(STATUSES, 0)
    for result in latest.values():
        status = result.get("status")
        counts[status if status in counts else "unknown"] += 1
    return {**counts, "total": len(latest)}


def totals(report: Path) -> dict[str, int]:
    """The run's counts by status, as the report itself states them."""
    summary = report / "widgets" / "summary.json"
    try:
        statistic = json.loads(summary.read_text())["statistic"]
    except FileNotFoundError:
        raise HarnessError(
            f"{report} is not an allure report (no {summary.name}); build one "
            "with `make report`"
        ) from None
    return {status: int(statistic.get(status, 0)) for status in (*STATUSES, "total")}


def shown_on_overview(dom: str) -> tuple[int | None, set[str]]:
    """The total the overview's summary shows, and the statuses of its chart."""
    summary = _widget(dom, "summary")
    total = re.search(r'class="splash__title">\s*(\d+)\s*<', summary)
    statuses = set(re.findall(r"chart__arc_status_(\w+)", summary))
    return (int(total.group(1)) if total else None), statuses


def shown_on_suites(dom: str) -> dict[str, int]:
    """The count of each status in the Suites page's status filter."""
    start = dom.find('class="status-toggle"')
    if start < 0:
        return {}
    shown: dict[str, int] = {}
    for status, n in re.findall(r'data-status="(\w+)"[^>]*>\s*(\d+)\s*<', dom[start:]):
        shown.setdefault(status, int(n))  # the filter comes first; rows follow
    return shown


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on a free loopback port, for the duration."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def render(url: str, *, binary: str, png: Path | None = None) -> str:
    """The DOM of ``url`` as Chromium renders it; and, in the same render, a
    screenshot into ``png`` when given."""
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={RENDER_BUDGET_MS}",
        *([f"--screenshot={png}"] if png else []), "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise HarnessError(
            f"{binary} exited {done.returncode} rendering {url}: "
            + done.stderr.strip()[-800:]
        )
    return done.stdout


def screenshot_problem(png: Path) -> str | None:
    """Why ``png`` is not a screenshot of the window, or None when it is."""
    try:
        head = png.read_bytes()[:24]
    except FileNotFoundError:
        return f"Chromium wrote no screenshot to {png}"
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return f"{png} is not a PNG image"
    size = struct.unpack(">II", head[16:24])
    if size != WINDOW:
        return f"{png} is {size[0]}x{size[1]} pixels, not the window's {WINDOW}"
    return None


def mismatches(report: Path, results: Path, *, binary: str, png: Path) -> list[str]:
    """What the report, rendered, gets wrong about ``results``; empty if nothing."""
    expected = counted(results)
    stated = totals(report)
    if stated != expected:
        return [
            f"the report's summary says {_describe(stated)}, but the results in "
            f"{results} hold {_describe(expected)}: build the report from them "
            "again (make report)"
        ]
    with served(report) as url:
        overview = render(url, binary=binary, png=png)
        suites = render(url + "#suites", binary=binary)
    problems = []
    total, charted = shown_on_overview(overview)
    if total != expected["total"]:
        problems.append(
            f"the overview shows {total} test cases, not the run's {expected['total']}"
        )
    occurring = {status for status in STATUSES if expected[status]}
    if charted != occurring:
        problems.append(
            f"the overview's chart shows {sorted(charted)}, not the run's statuses "
            f"{sorted(occurring)}"
        )
    shown = shown_on_suites(suites)
    for status in STATUSES:
        if shown.get(status) != expected[status]:
            problems.append(
                f"the Suites page shows {shown.get(status)} {status}, "
                f"not the run's {expected[status]}"
            )
    problem = screenshot_problem(png)
    return [*problems, *([problem] if problem else [])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report_view", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("report", type=Path, help="a folder built by `make report`")
    parser.add_argument(
        "--results",
        type=Path,
        help="the allure results it was built from; default: REPORT/../allure-results",
    )
    parser.add_argument("--png", type=Path, help="default: REPORT/../allure-report.png")
    args = parser.parse_args(argv)
    results = args.results or args.report.parent / "allure-results"
    png = (args.png or args.report.parent / "allure-report.png").resolve()
    png.unlink(missing_ok=True)
    try:
        problems = mismatches(args.report, results, binary=chromium(), png=png)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if png.exists():
            print(f"the rendered overview is in {png}", file=sys.stderr)
        return 1
    print(
        "report renders in headless Chromium: "
        f"{_describe(counted(results))}; screenshot: {png}"
    )
    return 0


def _ended(result: dict[str, Any]) -> tuple[int, int]:
    return int(result.get("stop") or 0), int(result.get("start") or 0)


def _widget(dom: str, name: str) -> str:
    """The part of ``dom`` from the overview widget ``name`` to the next one."""
    start = dom.find(f'data-id="{name}"')
    if start < 0:
        return ""
    end = dom.find("data-id=", start + 1)
    return dom[start : end if end > 0 else None]


def _describe(counts: dict[str, int]) -> str:
    shown = [f"{counts[status]} {status}" for status in STATUSES if counts[status]]
    return ", ".join([*shown, f"{counts['total']} total"])


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
