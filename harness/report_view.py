"""Open a built allure report in headless Chromium: a screenshot, and a check.

    python -m harness.report_view reports/allure-report [--png FILE]

The report is a JavaScript application that fetches its data, so it is
served over HTTP on loopback (file:// would not load). Chromium renders the
overview page into a PNG; then the page's DOM, as Chromium built it, must
show the run's totals from the report's own ``widgets/summary.json``, so a
blank or broken page fails rather than producing a picture of nothing.

Needs Chromium (Debian: ``apt-get install -y chromium``); ``CHROMIUM`` names
another binary.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.errors import HarnessError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RENDER_BUDGET_MS = 15_000  # virtual time Chromium gives the page's scripts


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
    return {status: int(n) for status, n in statistic.items()}


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


def render(url: str, png: Path, *, binary: str) -> str:
    """Screenshot ``url`` into ``png``; returns the page's DOM as rendered."""
    common = [
        binary, "--headless", "--no-sandbox", "--disable-gpu",
        "--hide-scrollbars", "--window-size=1440,1000",
        f"--virtual-time-budget={RENDER_BUDGET_MS}",
    ]  # fmt: skip
    for args in ([f"--screenshot={png}", url], ["--dump-dom", url]):
        done = subprocess.run(
            [*common, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise HarnessError(
                f"{binary} exited {done.returncode} rendering {url}: "
                + done.stderr.strip()[-800:]
            )
    return done.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report_view", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("report", type=Path, help="a folder built by `make report`")
    parser.add_argument("--png", type=Path, help="default: REPORT/../allure-report.png")
    args = parser.parse_args(argv)
    png = (args.png or args.report.parent / "allure-report.png").resolve()
    try:
        counts = totals(args.report)
        with served(args.report) as url:
            dom = render(url, png, binary=chromium())
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The overview's summary widget shows the number of test cases.
    if f">{counts['total']}<" not in dom.replace(" ", ""):
        print(
            f"error: the rendered report does not show the run's {counts['total']} "
            f"test cases; screenshot in {png}",
            file=sys.stderr,
        )
        return 1
    shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    print(f"report renders in headless Chromium: {shown}; screenshot: {png}")
    return 0


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
