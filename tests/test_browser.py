"""The web page in a real headless Chromium (Debian's /usr/bin/chromium).

Driven by Playwright (``executable_path=/usr/bin/chromium``; no ``playwright install``); if Playwright
is missing or cannot drive this Chromium version, by Selenium with Debian's /usr/bin/chromedriver.
Skipped (with the reason) only when Chromium is absent; installed but not drivable is a failure.
``POLYIR_CHROMIUM`` / ``POLYIR_CHROMEDRIVER`` point at other binaries.
A server runs on a free loopback port in a background thread; the test types queries, ticks a
language, and reads the results and the language bar back from the page.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Skip only when Chromium is absent. Where it is installed the test must run: a driver that cannot
# start it is a failure (with each driver's reason), never a silent skip (CI installs chromium).
CHROMIUM = Path(os.environ.get("POLYIR_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("POLYIR_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)"
    ),
    pytest.mark.timeout(180),
]

TEXTS = {
    "en": ["the cat sat on the mat", "the dog ran in the park", "who was the first emperor of rome", "berlin is a big city"],
    "de": ["der hund", "wer war der erste kaiser von rom", "katze", "berlin"],
    "es": ["el gato", "el perro", "quien fue el primer emperador de rome", "madrid"],
}


class PlaywrightDriver:
    """The few page actions the test needs, through Playwright."""

    name = "playwright"

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS[1:])
            self._page = self._browser.new_page()
        except Exception:
            self._pw.stop()
            raise
        self._page.set_default_timeout(20_000)

    def goto(self, url):
        self._page.goto(url)

    def fill(self, css, value):
        self._page.fill(css, value)

    def click(self, css):
        self._page.click(css)

    def js(self, expression):
        return self._page.evaluate(expression)

    def wait(self, condition, timeout=20):
        self._page.wait_for_function(condition, timeout=timeout * 1000)

    def close(self):
        self._browser.close()
        self._pw.stop()


class SeleniumDriver:
    """The same actions through Selenium and Debian's chromedriver (same version as chromium)."""

    name = "selenium"

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for a in ARGS:
            options.add_argument(a)
        self._d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)

    def goto(self, url):
        self._d.get(url)

    def fill(self, css, value):
        from selenium.webdriver.common.by import By

        el = self._d.find_element(By.CSS_SELECTOR, css)
        el.clear()
        if value:
            el.send_keys(value)

    def click(self, css):
        from selenium.webdriver.common.by import By

        self._d.find_element(By.CSS_SELECTOR, css).click()

    def js(self, expression):
        return self._d.execute_script(f"return ({expression});")

    def wait(self, condition, timeout=20):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self._d, timeout).until(lambda d: d.execute_script(f"return ({condition});"))

    def close(self):
        self._d.quit()


def _start_driver():
    reasons = []
    for cls in (PlaywrightDriver, SeleniumDriver):
        try:
            return cls()
        except ImportError as exc:
            reasons.append(f"{cls.name}: not installed ({exc.name})")
        except Exception as exc:  # noqa: BLE001 - collect why, try the next driver
            reasons.append(f"{cls.name}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    pytest.fail(f"{CHROMIUM} is installed but no driver could start it: " + "; ".join(reasons), pytrace=False)


@pytest.fixture(scope="module")
def base_url(tiny_model_dir, tmp_path_factory):
    pytest.importorskip("fastapi")
    from polyir.models.resolve import load_encoder
    from polyir.serve.app import background_server, create_app
    from polyir.testing import build_tiny_index

    encoder = load_encoder(str(tiny_model_dir), device="cpu")
    folder = build_tiny_index(tmp_path_factory.mktemp("browser") / "idx", encoder, TEXTS)
    with background_server(create_app(folder, encoder=encoder)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(base_url):
    driver = _start_driver()
    try:
        driver.goto(base_url + "/")
        driver.wait("document.querySelectorAll('#language-filter input').length > 0")
        yield driver
    finally:
        driver.close()


SEARCHES = "parseInt(document.body.dataset.searches || '0', 10)"


def _search(b, query: str, k: int = 10, per_language: str = "") -> None:
    before = b.js(SEARCHES)
    b.js("document.getElementById('error') && document.getElementById('error').remove()")
    b.fill("#query", query)
    b.fill("#k", str(k))
    b.fill("#per-language", per_language)
    b.click("#submit")
    b.wait(f"{SEARCHES} > {before} || !!document.getElementById('error')")


def _results(b) -> list[list[str]]:
    return b.js("Array.from(document.querySelectorAll('#results li.hit'))"
                ".map(e => [e.dataset.lang, e.querySelector('.text').textContent])")


def _bar(b) -> dict[str, int]:
    segs = b.js("Array.from(document.querySelectorAll('#language-bar .seg')).map(e => [e.dataset.lang, e.dataset.count])")
    return {lang: int(n) for lang, n in segs}


def _tick(b, code: str, on: bool) -> None:
    if bool(b.js(f"document.getElementById('lang-{code}').checked")) != on:
        b.click(f"#lang-{code}")


def test_page_search_filter_and_language_bar(browser):
    b = browser
    assert b.js("document.title") == "polyir search"
    assert b.js("document.querySelectorAll('#language-filter input[type=checkbox]').length") == 3
    _search(b, "who was the first emperor of rome", k=6)
    results = _results(b)
    assert len(results) == 6
    assert results[0] == ["en", "who was the first emperor of rome"]
    counts: dict[str, int] = {}
    for lang, _ in results:
        counts[lang] = counts.get(lang, 0) + 1
    assert _bar(b) == counts and sum(counts.values()) == 6
    assert "6 results" in b.js("document.getElementById('status').textContent")
    assert b.js("document.querySelector('#results .lang-tag').textContent") == "en"

    # Per-language merging: two of each language.
    _search(b, "berlin", k=6, per_language="2")
    assert _bar(b) == {"de": 2, "en": 2, "es": 2}

    # Only German.
    _tick(b, "de", True)
    _search(b, "berlin", k=3)
    assert {lang for lang, _ in _results(b)} == {"de"} and _bar(b) == {"de": 3}
    _tick(b, "de", False)


def test_page_shows_server_errors(browser):
    b = browser
    _search(b, "    ", k=5)
    assert "query must not be blank" in b.js("document.getElementById('error').textContent")
    # The page (and the server) keep working after an error.
    _search(b, "el gato", k=2)
    assert len(_results(b)) == 2
