"""A page opened in a real headless browser: Debian's Chromium driven by Playwright.

`.ci/run` (via `make test`) installs Chromium (tests/support/chromium.sh); Playwright's own
browser downloads are never used. A missing browser fails the test, it is not skipped."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = os.environ.get("VITP_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")

# Per figure: is it an <img> that loaded, and how large did it render?
FIGURES_JS = """() => [...document.querySelectorAll('figure')].map(f => {
  const img = f.querySelector('img');
  const box = f.getBoundingClientRect();
  return {id: f.id || f.title, loaded: !!img && img.complete && img.naturalWidth > 0,
          width: img ? img.naturalWidth : 0, height: img ? img.naturalHeight : 0, shown: box.height};
})"""


@dataclass
class Rendered:
    errors: list[str]  # console errors and uncaught page errors
    requests: list[str]  # every URL the page asked for besides itself
    figures: list[dict]
    text: str
    screenshot: Path


def render(page_file: Path, screenshot: Path, width: int = 1200) -> Rendered:
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"no Chromium at {CHROMIUM}: run tests/support/chromium.sh (make test does)")
    url = page_file.resolve().as_uri()
    errors, requests = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on(
                "request", lambda r: requests.append(r.url) if r.url != url and not r.url.startswith("data:") else None
            )
            page.goto(url, wait_until="load")
            figures = page.evaluate(FIGURES_JS)
            text = page.inner_text("body")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Rendered(errors, requests, figures, text, screenshot)
