"""Draw the README's picture of ``minflaubert explore``: a page opened in headless Chromium, one head enlarged and
one token hovered, cut to the top of the page.

    python scripts/screenshot_explore.py                    # -> docs/explore.png
    python scripts/screenshot_explore.py --out /tmp/x.png "Il leva les <special1> vers le ciel ."

Needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``) and ``pip install -e
".[browser]"``. tests/test_explore_browser.py opens its pages with :func:`start_browser` too.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEXT = "Elle ouvrit la <special1> ."


def browser_paths() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) as installed by the system's packages, or None for what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    return chromium, shutil.which("chromedriver")


def start_browser(width: int = 1280, height: int = 1000):
    """Headless Chromium driven by Selenium through the system's chromedriver, with the network off.

    subtle: Selenium would otherwise run Selenium Manager, which downloads a driver when it finds none; the driver
    path is given and SE_OFFLINE forbids any download. The network is cut twice: a proxy that does not exist for
    every request, and DevTools' offline mode, so a page that tried to fetch anything would fail visibly.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    chromium, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", f"--window-size={width},{height}", "--proxy-server=http://127.0.0.1:9",
                     "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                 "downloadThroughput": 0, "uploadThroughput": 0})
    return browser


def open_page(browser, path: Path, timeout: float = 30.0) -> None:
    """Load a page from file:// and wait until its script has drawn everything (``body[data-ready]``)."""
    browser.get(Path(path).resolve().as_uri())
    deadline = time.monotonic() + timeout
    while not browser.execute_script("return document.body.dataset.ready === 'true'"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not drawn in {timeout} s: {browser.get_log('browser')}")
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", nargs="?", default=TEXT)
    parser.add_argument("--out", default=str(REPO / "docs" / "explore.png"))
    parser.add_argument("--height", type=int, default=2050, help="pixels of the page kept, from its top")
    args = parser.parse_args(argv)
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from minflaubert import explore

    browser = start_browser(height=args.height)
    try:
        with tempfile.TemporaryDirectory() as folder:
            os.chdir(REPO)  # (so that the page says "loaded from weights/flaubert_tiny", not this machine's path)
            page = explore(args.text, model="weights/flaubert_tiny").save(Path(folder) / "page.html")
            open_page(browser, page)
            browser.find_element(By.CSS_SELECTOR, "button.head-cell[data-layer='1'][data-head='2']").click()
            mask = browser.find_element(By.CSS_SELECTOR, "#hv-from .hv-token.mask")
            ActionChains(browser).move_to_element(mask).perform()
            png = browser.get_screenshot_as_png()
    finally:
        browser.quit()
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    picture = picture.quantize(colors=128)  # (a page is a few flat colours: a palette keeps the file small)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out, optimize=True)
    print(f"{args.out}: {picture.width} x {picture.height}, {Path(args.out).stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
