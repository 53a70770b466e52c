"""The built HTML book in a real browser: headless Chromium, with the network cut off.

Every page of ``_build/html`` is opened from ``file://`` and must load without a console
error, without a request outside the book's folder, with every ``<img>`` loaded and,
where it has math, with MathJax's rendering in place of every formula and no raw TeX
left; in the 1280-pixel window no code cell or printed output may scroll sideways
(``book/_static/cvae_book.css`` fits them to the column). A screenshot of each page
goes to ``_build/screenshots/``. The latent explorer (``notebooks/10_explorer.md``)
must follow a pointer, pin a point on a click, draw samples of a chosen class, decode
50 random codes as this library's decoder does (to 1e-4), keep up with the pointer at
20 or more decodes a second (the measured rates are printed), work from a static
server, and leave the static figures when JavaScript is off. Every chapter page must
link its executed ``.ipynb`` (under its title and in the theme's download menu), a file
that parses as a notebook with outputs and the install note first, and read in the
theme's dark mode: the page turns dark and every figure keeps an opaque white ground
(a dark-mode screenshot of each chapter too).

The agreement test also runs without a built book, on a page made here around a
full-size decoder, so that plain ``pytest`` tests the page's JavaScript wherever
Chromium is installed.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and
``selenium`` (the ``test`` extra). Without them, or without a built book, these tests
skip and say why; CI sets ``CVAE_BROWSER_TESTS=require``, which makes that a failure.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(
    os.environ.get("CVAE_BOOK_HTML", ROOT / "_build" / "html")
).resolve()  # another build's
SCREENSHOTS = HTML.parent / "screenshots"
EXPLORER_JS = ROOT / "book" / "_static" / "cvae_explorer.js"
EXPLORER_DATA = Path(
    "_static", "explorer", "cvae_explorer_data.js"
)  # inside the built book
CHROMIUM = os.environ.get("CVAE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CVAE_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE = os.environ.get("CVAE_BROWSER_TESTS") == "require"
MIN_UPDATES_PER_SECOND = 20

# Headless Chromium as root, quiet, and cut off from the network: no host name resolves
# and every connection that is not to this machine goes to a closed port.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--proxy-server=127.0.0.1:9",
]


def unavailable(reason: str):
    """Skip, or fail where CI requires these tests to run."""
    if REQUIRE:
        pytest.fail(f"CVAE_BROWSER_TESTS=require, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            unavailable(f"no {path}: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed: pip install -e '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = (
        CHROMIUM  # with both paths given, Selenium Manager never runs
    )
    for flag in CHROMIUM_FLAGS + [
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"
    ]:
        options.add_argument(flag)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=CHROMEDRIVER)
    )
    driver.set_script_timeout(60)
    driver.get(
        "about:blank"
    )  # off the start page, whose own chrome:// loads would be logged
    try:
        yield driver
    finally:
        driver.quit()


def visit(driver, url: str) -> dict:
    """Load ``url``, wait for its scripts, images and MathJax; what the page did."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser"), driver.get_log("performance")  # forget the previous page
    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"
        )
    )
    mathjax = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        if (!window.MathJax) return done("absent");
        (function wait() {
          if (MathJax.startup && MathJax.startup.promise)
            MathJax.startup.promise.then(() => done("typeset"), (e) => done("failed: " + e));
          else setTimeout(wait, 50);
        })();""")
    events = [
        json.loads(entry["message"])["message"]
        for entry in driver.get_log("performance")
    ]
    requests = [
        e["params"]["request"]["url"]
        for e in events
        if e["method"] == "Network.requestWillBeSent"
        and not e["params"].get("documentURL", "").startswith("chrome://")
    ]  # the browser's own pages
    facts = driver.execute_script("""
        const raw = [], maths = Array.from(document.querySelectorAll(".math"));
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
          const node = walker.currentNode;
          if (node.parentElement.closest("pre, code, script, style, textarea, mjx-container")) continue;
          const text = node.textContent;  // $...$, \\( or \\[ that MathJax left as it was
          if (/\\$[^$\\s][^$]*\\$|\\\\\\(|\\\\\\[/.test(text)) raw.push(text.trim().slice(0, 80));
        }
        return {
          maths: maths.length,
          unrendered: maths.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 80)),
          raw: raw,
          broken: Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src),
          clipped: Array.from(document.querySelectorAll(".cell_input pre, .cell_output pre"))
            .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
            .map(e => e.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a))),
        };""")
    # Over http the browser asks for /favicon.ico of its own accord; the book has none.
    errors = [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "/favicon.ico - " not in e["message"]
    ]
    return {**facts, "mathjax": mathjax, "requests": requests, "errors": errors}


def screenshot(driver, name: str, whole_page: bool = True) -> Path:
    """The whole page (up to 12,000 pixels down), or what the window shows, as
    _build/screenshots/<name>.png. A whole-page shot lays the page out anew, taller,
    which moves it from under the pointer."""
    if whole_page:
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": size["width"],
            "height": min(size["height"], 12000),
            "scale": 1,
        }
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        png = base64.b64decode(shot["data"])
    else:
        png = driver.get_screenshot_as_png()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(png)
    return path


def built_pages() -> list[Path]:
    return sorted(
        p
        for p in HTML.rglob("*.html")
        if not p.relative_to(HTML).parts[0].startswith("_")
    )


def explorer_page() -> Path:
    """The built book's explorer page, or a skip (a failure in CI) saying what is missing."""
    if not HTML.is_dir():
        unavailable(f"no built book at {HTML}: run scripts/build_book.sh first")
    pages = [
        p
        for p in built_pages()
        if 'id="cvae-explorer"' in p.read_text(encoding="utf-8")
    ]
    if len(pages) != 1:
        unavailable(
            f"{len(pages)} pages of {HTML} hold the latent explorer, expected 1: rebuild the book"
        )
    return pages[0]


PAGES = built_pages() if HTML.is_dir() else []


@pytest.mark.parametrize(
    "page",
    PAGES or [None],
    ids=[str(p.relative_to(HTML)) for p in PAGES] or ["no-book"],
)
def test_every_page_loads_offline_with_its_images_and_math(browser, page):
    if page is None:
        unavailable(f"no built book at {HTML}: run scripts/build_book.sh first")
    seen = visit(browser, page.as_uri())
    screenshot(browser, "__".join(page.relative_to(HTML).with_suffix("").parts))
    assert seen["errors"] == [], "console errors"
    book = HTML.as_uri() + "/"
    assert [
        url for url in seen["requests"] if not url.startswith((book, "data:", "blob:"))
    ] == []
    assert seen["broken"] == [], "images that did not load"
    # in a 1280-pixel window, no code cell or printed output hides behind a scroll bar
    assert seen["clipped"] == [], (
        "code wider than the column (longest line of each cell)"
    )
    assert seen["unrendered"] == [] and seen["raw"] == [], "math MathJax did not render"
    if seen["maths"]:
        assert seen["mathjax"] == "typeset"


# ---- chapters as notebooks --------------------------------------------------------

CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.md"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_page_offers_its_executed_notebook(browser, chapter):
    """The line under the title and the theme's download menu both link the chapter's
    executed ``.ipynb``, which parses as a notebook: the install note first, outputs kept."""
    from urllib.parse import unquote, urlparse

    import nbformat

    page = HTML / "notebooks" / f"{chapter}.html"
    if not page.is_file():
        unavailable(f"no built chapter at {page}: run scripts/build_book.sh first")
    visit(browser, page.as_uri())
    links = browser.execute_script("""
        const hrefs = s => Array.from(document.querySelectorAll(s)).map(a => a.href);
        return {line: hrefs(".cvae-runtime a.cvae-notebook-download"),
                menu: hrefs(".dropdown-download-buttons a[href$='.ipynb']"),
                runtime: Array.from(document.querySelectorAll(".cvae-runtime")).map(p => p.textContent)};""")
    assert len(links["line"]) == 1 and links["menu"] == links["line"], links
    assert (
        len(links["runtime"]) == 1
        and " s when the book was built" in links["runtime"][0]
    )
    path = Path(unquote(urlparse(links["line"][0]).path))
    assert path.name == f"{chapter}.ipynb" and path.is_relative_to(HTML)
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert "pip install" in notebook.cells[0].source
    assert any(
        cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"
    )
    markdown = "\n".join(
        cell.source for cell in notebook.cells if cell.cell_type == "markdown"
    )
    assert (
        "{glue" not in markdown
        and "{py:" not in markdown
        and "{cite}" not in markdown
        and "{term}" not in markdown
        and "{literalinclude}" not in markdown
    )


def luminance(css_colour: str) -> float:
    """0 (black) to 1 (white), from a computed ``rgb(r, g, b)`` or ``rgba(r, g, b, a)``."""
    red, green, blue = (float(v) for v in re.findall(r"[\d.]+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


#: The page's background colour: the body's, or the root's where the body has none.
PAGE_BACKGROUND = """
    const opaque = c => !/^rgba\\(.*,\\s*0\\)$/.test(c) && c !== "transparent";
    const body = getComputedStyle(document.body).backgroundColor;
    return opaque(body) ? body
        : getComputedStyle(document.documentElement).backgroundColor;"""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_reads_in_dark_mode(browser, chapter):
    """In the theme's dark mode the page turns dark and every figure keeps its white
    ground: a figure image with transparent pixels would show black axes and labels on
    the dark page. A screenshot of each chapter in dark mode goes beside the others."""
    from urllib.parse import unquote, urlparse

    from PIL import Image

    page = HTML / "notebooks" / f"{chapter}.html"
    if not page.is_file():
        unavailable(f"no built chapter at {page}: run scripts/build_book.sh first")
    visit(browser, page.as_uri())
    light = browser.execute_script(PAGE_BACKGROUND)
    browser.execute_script("document.documentElement.dataset.theme = 'dark';")
    dark = browser.execute_script(PAGE_BACKGROUND)
    assert luminance(light) > 0.8 and luminance(dark) < 0.2, (light, dark)
    screenshot(browser, f"notebooks__{chapter}__dark")
    sources = browser.execute_script(
        "return Array.from(document.querySelectorAll('article img')).map(i => i.src)"
    )
    figures = [Path(unquote(urlparse(s).path)) for s in sources if s.endswith(".png")]
    transparent = [
        p.name
        for p in figures
        if Image.open(p).convert("RGBA").getextrema()[3][0] < 255
    ]
    assert transparent == [], "figures with a transparent ground"


# ---- the explorer -----------------------------------------------------------------


def pixels(driver, selector: str) -> np.ndarray:
    """The grey levels of a canvas of the explorer."""
    values = driver.execute_script(
        """
        const canvas = document.querySelector(arguments[0]);
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        return Array.from(data.filter((_, i) => i % 4 === 0));""",
        selector,
    )
    return np.array(values, np.uint8)


def readout(driver) -> str:
    return driver.execute_script(
        "return document.querySelector('.cvae-explorer-readout').textContent"
    )


def assert_agrees_with_the_library(driver, data_path: Path) -> float:
    """50 random codes decoded by the page and by cvae_lib's decoder with the same weights."""
    from cvae_lib.explorer import explorer_images, read_explorer_data

    codes = np.random.default_rng(0).normal(scale=3.0, size=(50, 2)).astype(np.float32)
    in_page = driver.execute_script(
        "return arguments[0].map(z => window.cvaeExplorer.decode(z))", codes.tolist()
    )
    expected = explorer_images(read_explorer_data(data_path), codes).reshape(50, -1)
    difference = float(np.abs(np.array(in_page) - expected).max())
    assert difference < 1e-4, (
        f"the page's decoder differs from cvae_lib's by {difference:.1e}"
    )
    return difference


@pytest.fixture(scope="module")
def explorer(browser):
    """The built explorer page, loaded; ``(driver, page facts)``."""
    page = explorer_page()
    return browser, visit(browser, page.as_uri())


def test_the_explorer_follows_the_pointer_and_pins_a_click(explorer):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, seen = explorer
    assert seen["errors"] == []
    root = driver.find_element(By.ID, "cvae-explorer")
    assert root.is_displayed()
    plane = driver.find_element(By.CSS_SELECTOR, ".cvae-explorer-plot canvas")
    # All of it in view: a pointer's offset is from the centre of the part in view.
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", plane)
    shown = []
    for digit in (1, 0):  # over the class means, where the decoder draws clear digits
        offset = driver.execute_script(
            """
            const [x, y] = window.cvaeExplorer.clientPoint(window.CVAE_EXPLORER.class_means[arguments[1]]);
            const box = arguments[0].getBoundingClientRect();  // offsets are from the centre
            return [Math.round(x - box.left - box.width / 2), Math.round(y - box.top - box.height / 2)];""",
            plane,
            digit,
        )
        before = readout(driver)
        ActionChains(driver).move_to_element_with_offset(plane, *offset).perform()
        WebDriverWait(driver, 10).until(lambda d: readout(d) != before)
        state, where = readout(driver).split("\n")[
            :2
        ]  # "under the pointer", "z = (x, y)"
        mean = driver.execute_script(
            f"return window.CVAE_EXPLORER.class_means[{digit}]"
        )
        assert state == "under the pointer"
        assert np.allclose(
            json.loads(where[4:].replace("(", "[").replace(")", "]")), mean, atol=0.2
        )
        shown.append(pixels(driver, ".cvae-explorer-digit"))
    for image in shown:
        assert int(image.max()) - int(image.min()) > 32, "the decoded digit is blank"
    assert not np.array_equal(shown[0], shown[1]), (
        "the digit did not follow the pointer"
    )
    screenshot(
        driver, "explorer-pointer", whole_page=False
    )  # the digit under the pointer, for a person

    ActionChains(driver).click().perform()
    where = readout(driver).split("\n")[1]
    ActionChains(driver).move_to_element(
        driver.find_element(By.CSS_SELECTOR, ".cvae-explorer-digit")
    ).perform()
    WebDriverWait(driver, 10).until(lambda d: readout(d).startswith("pinned"))
    assert readout(driver).split("\n")[1] == where


def test_a_finger_moves_and_pins_the_point_too(explorer):
    """A touch drag over the plane decodes under the finger; lifting it leaves the point pinned."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = explorer
    driver.execute_cdp_cmd(
        "Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1}
    )
    try:
        points = driver.execute_script("""
            const plane = document.querySelector(".cvae-explorer-plot canvas");
            plane.scrollIntoView({block: "center"});
            return [2, 3].map(c => window.cvaeExplorer.clientPoint(window.CVAE_EXPLORER.class_means[c]));""")

        def touch(kind, point):
            points_now = [] if point is None else [{"x": point[0], "y": point[1]}]
            driver.execute_cdp_cmd(
                "Input.dispatchTouchEvent", {"type": kind, "touchPoints": points_now}
            )

        touch("touchStart", points[0])
        touch("touchMove", points[1])
        WebDriverWait(driver, 10).until(
            lambda d: readout(d).startswith("under the pointer")
        )
        touch("touchEnd", None)
        WebDriverWait(driver, 10).until(lambda d: readout(d).startswith("pinned"))
        where = readout(driver).split("\n")[1]
        mean = driver.execute_script("return window.CVAE_EXPLORER.class_means[3]")
        assert np.allclose(
            json.loads(where[4:].replace("(", "[").replace(")", "]")), mean, atol=0.2
        )
    finally:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


def test_the_class_buttons_draw_fresh_samples(explorer):
    from selenium.webdriver.common.by import By

    driver, _ = explorer
    before = pixels(driver, ".cvae-explorer-samples")
    button = driver.find_elements(By.CSS_SELECTOR, ".cvae-explorer-classes button")[7]
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    after = pixels(driver, ".cvae-explorer-samples")
    assert int(after.max()) - int(after.min()) > 32 and not np.array_equal(
        before, after
    )


def test_the_built_explorer_decodes_as_the_library(explorer):
    driver, _ = explorer
    assert_agrees_with_the_library(driver, HTML / EXPLORER_DATA)


def test_the_explorer_keeps_up_with_the_pointer(explorer, capsys):
    driver, _ = explorer
    decodes = driver.execute_script("return window.cvaeExplorer.benchmark(3000)")
    # The whole path of a pointer move: event, decode, drawing, at the browser's frame rate.
    updates = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const plane = document.querySelector(".cvae-explorer-plot canvas"), box = plane.getBoundingClientRect();
        const readout = document.querySelector(".cvae-explorer-readout");
        let shown = readout.textContent, updates = 0;
        const start = performance.now();
        (function frame() {
          if (readout.textContent !== shown) { updates++; shown = readout.textContent; }
          if (performance.now() - start > 3000) return done(updates / ((performance.now() - start) / 1000));
          plane.dispatchEvent(new PointerEvent("pointermove", {bubbles: true,
            clientX: box.left + Math.random() * box.width, clientY: box.top + Math.random() * box.height}));
          requestAnimationFrame(frame);
        })();""")
    with capsys.disabled():
        print(
            f"\nlatent explorer in headless Chromium: {decodes:.0f} decodes/s,"
            f" {updates:.0f} pointer updates/s drawn ({os.cpu_count()} CPUs)"
        )
    assert updates >= MIN_UPDATES_PER_SECOND and decodes >= MIN_UPDATES_PER_SECOND


def test_the_explorer_works_from_a_static_server(browser):
    page = explorer_page()
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(HTML)
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}/"
        seen = visit(browser, origin + page.relative_to(HTML).as_posix())
        assert (
            seen["errors"] == []
            and [u for u in seen["requests"] if not u.startswith(origin)] == []
        )
        assert browser.execute_script(
            "return !document.getElementById('cvae-explorer').hidden"
            " && window.cvaeExplorer.decode([0, 0]).length === 784"
        )
    finally:
        server.shutdown()
        server.server_close()


def test_without_javascript_the_page_keeps_its_static_figures(browser):
    from selenium.webdriver.common.by import By

    page = explorer_page()
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(page.as_uri())
        assert not browser.find_element(By.ID, "cvae-explorer").is_displayed()
        figures = browser.find_elements(By.CSS_SELECTOR, ".cell_output img")
        assert len(figures) >= 2 and all(img.is_displayed() for img in figures)
        screenshot(browser, "explorer-without-javascript")
    finally:
        browser.execute_cdp_cmd(
            "Emulation.setScriptExecutionDisabled", {"value": False}
        )


# ---- the page's JavaScript without a built book --------------------------------------


def test_the_page_decodes_as_the_library_without_a_built_book(browser, tmp_path):
    """A full-size decoder, its weights scaled and biases set so that the pixels span [0, 1]."""
    from cvae_lib.config import ModelConfig
    from cvae_lib.explorer import write_explorer_data
    from cvae_lib.model import ConditionalVAE

    model = ConditionalVAE(ModelConfig())
    rng = np.random.default_rng(1)
    model.decoder.set_weights(
        [
            2 * w if w.ndim > 1 else rng.normal(scale=0.1, size=w.shape)
            for w in model.decoder.get_weights()
        ]
    )
    images = rng.random((30, 28, 28, 1), np.float32)
    data = write_explorer_data(
        model, images, np.arange(30) % 10, tmp_path / "cvae_explorer_data.js"
    )
    shutil.copy(EXPLORER_JS, tmp_path)
    (tmp_path / "page.html").write_text(
        '<!doctype html><meta charset="utf-8"><div id="cvae-explorer" hidden></div>'
        '<script src="cvae_explorer_data.js"></script><script src="cvae_explorer.js"></script>'
    )
    seen = visit(browser, (tmp_path / "page.html").as_uri())
    assert seen["errors"] == []
    assert_agrees_with_the_library(browser, data)
