"""``minflaubert explore``'s page in a real browser: headless Chromium opens it from file:// with the network off,
and the tests click, hover and read what it shows.

They need Chromium, its driver and Selenium (Debian: ``apt-get install chromium chromium-driver``, then ``pip
install -e ".[browser]"``); without them they skip on a user's machine and fail in CI (``conftest.require``).
The page's numbers are compared with the library's (the fill-mask pipeline's for the guesses), never with numbers
written here: the shipped model is retrained from time to time.
"""
import importlib.util
import io
import json
import sys
import warnings

import numpy as np
import pytest

from conftest import FIXTURES, REPO, require
from minflaubert.apps.explore import explore, unpack_attention
from minflaubert.apps.pipelines import pipeline

TEXT = "Elle ouvrit la <special1> ."


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


screenshots = load_script("screenshot_explore")


@pytest.fixture(scope="module")
def browser():
    chromium, driver = screenshots.browser_paths()
    require(chromium is not None and driver is not None,
            "Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        require(False, "selenium is not installed (pip install -e '.[browser]')")
    browser = screenshots.start_browser()
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The pages the tests open: the shipped model on TEXT, and a model without LM head (tests/fixtures)."""
    folder = tmp_path_factory.mktemp("pages")
    shipped = explore(TEXT)
    bare = explore(TEXT, model=FIXTURES / "tiny-model")
    return {"shipped": (shipped, shipped.save(folder / "shipped.html")),
            "bare": (bare, bare.save(folder / "bare.html"))}


def opened(browser, pages, name):
    """Open a page, check it drew without a console error, and return its exploration."""
    exploration, path = pages[name]
    screenshots.open_page(browser, path)
    problems = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == [], problems
    return exploration


def find(browser, selector):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def hover(browser, element):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(element).perform()


@pytest.mark.parametrize("name", ["shipped", "bare"])
def test_one_map_per_layer_and_head(browser, pages, name):
    exploration = opened(browser, pages, name)
    layers, heads, n, _ = exploration.data["attention"]["shape"]
    cells = find(browser, "button.head-cell")
    assert len(cells) == layers * heads
    assert {(int(c.get_attribute("data-layer")), int(c.get_attribute("data-head"))) for c in cells} == \
        {(layer, head) for layer in range(layers) for head in range(heads)}
    assert browser.execute_script("return document.querySelector('button.head-cell canvas').width") == n
    assert len(find(browser, ".word .piece")) == n
    assert len(find(browser, "#norm-chart polyline")) == layers + 1


def test_all_maps_share_one_colour_scale(browser, pages):
    """Across every map, a larger weight is never a lighter pixel, and the largest is the darkest colour."""
    exploration = opened(browser, pages, "shipped")
    maps = unpack_attention(exploration.data["attention"])  # [layers, heads, seq, seq]
    pixels = browser.execute_script("""
        return [...document.querySelectorAll('button.head-cell')].map(button => {
          const canvas = button.querySelector('canvas');
          return [+button.dataset.layer, +button.dataset.head,
                  Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)];
        });""")
    weights, darkness = [], []
    for layer, head, rgba in pixels:
        rgb = np.array(rgba).reshape(maps.shape[2], maps.shape[3], 4)[..., :3]  # [query, key, rgb]
        weights.append(maps[layer, head].ravel())
        darkness.append(765 - rgb.sum(axis=-1).ravel())
    weights, darkness = np.concatenate(weights), np.concatenate(darkness)
    order = np.argsort(weights, kind="stable")
    assert np.all(np.diff(darkness[order]) >= 0)
    assert darkness[order[-1]] == 765 - (8 + 48 + 107)  # the scale's end: the largest weight of all the maps


def test_a_click_enlarges_a_head(browser, pages):
    exploration = opened(browser, pages, "shipped")
    detail = find(browser, "#head-detail")[0]
    assert not detail.is_displayed()
    find(browser, "button.head-cell[data-layer='2'][data-head='1']")[0].click()
    assert detail.is_displayed() and find(browser, "#detail-title")[0].text == "Layer 2, head 1"
    assert (detail.get_attribute("data-layer"), detail.get_attribute("data-head")) == ("2", "1")
    assert find(browser, "#detail-map")[0].size["width"] > 100
    assert [c.get_attribute("aria-pressed") for c in find(browser, "button.head-cell")].count("true") == 1
    n = len(exploration.data["tokens"])
    assert len(find(browser, "#hv-from .hv-token")) == len(find(browser, "#hv-to .hv-token")) == n


def test_the_keyboard_reaches_the_maps(browser, pages):
    from selenium.webdriver.common.keys import Keys

    opened(browser, pages, "shipped")
    cell = find(browser, "button.head-cell[data-layer='1'][data-head='3']")[0]
    browser.execute_script("arguments[0].focus()", cell)
    cell.send_keys(Keys.ENTER)
    assert find(browser, "#detail-title")[0].text == "Layer 1, head 3"
    token = find(browser, "#hv-from .hv-token")[2]
    browser.execute_script("arguments[0].focus()", token)
    assert "active" in token.get_attribute("class")


def test_hovering_a_token_shows_where_it_looks_and_who_looks_at_it(browser, pages):
    exploration = opened(browser, pages, "shipped")
    maps = unpack_attention(exploration.data["attention"])
    find(browser, "button.head-cell[data-layer='3'][data-head='0']")[0].click()
    query = find(browser, "#hv-from .hv-token")[4]  # the mask
    hover(browser, query)
    assert "active" in query.get_attribute("class")
    shown = [float(span.get_attribute("data-weight")) for span in find(browser, "#hv-to .hv-token")]
    np.testing.assert_allclose(shown, maps[3, 0, 4], atol=6e-4)
    assert 0 < int(find(browser, "#head-view")[0].get_attribute("data-lines")) <= len(shown)
    assert "looks most at" in find(browser, "#detail-readout")[0].text
    key = find(browser, "#hv-to .hv-token")[1]
    hover(browser, key)
    assert "active" in key.get_attribute("class") and "active" not in query.get_attribute("class")
    shown = [float(span.get_attribute("data-weight")) for span in find(browser, "#hv-from .hv-token")]
    np.testing.assert_allclose(shown, maps[3, 0, :, 1], atol=6e-4)
    assert "is looked at most by" in find(browser, "#detail-readout")[0].text


def test_hiding_the_sinks_drops_them_everywhere(browser, pages):
    exploration = opened(browser, pages, "shipped")
    n = len(exploration.data["tokens"])
    find(browser, "button.head-cell[data-layer='0'][data-head='0']")[0].click()
    scale = float(find(browser, "#scale-max")[0].text)
    find(browser, "#hide-sinks")[0].click()
    assert browser.execute_script("return document.querySelector('button.head-cell canvas').width") == n - 2
    assert len(find(browser, "#hv-from .hv-token")) == n - 2
    assert not [s for s in find(browser, ".hv-token") if "sink" in s.get_attribute("class")]
    kept = unpack_attention(exploration.data["attention"])[:, :, 1:-1, 1:-1]
    assert float(find(browser, "#scale-max")[0].text) == pytest.approx(kept.max(), abs=0.006) and \
        float(find(browser, "#scale-max")[0].text) <= scale
    find(browser, "#hide-sinks")[0].click()
    assert len(find(browser, "#hv-from .hv-token")) == n


def test_the_guesses_shown_are_the_pipelines(browser, pages):
    exploration = opened(browser, pages, "shipped")
    proposals = pipeline("fill-mask")(TEXT, top_k=5)
    (mask,) = exploration.data["predictions"]
    rows = find(browser, f"table.lens[data-position='{mask['position']}'] tbody tr")
    assert len(rows) == len(mask["layers"]) == exploration.data["model"]["config"]["n_layers"] + 1
    for row, layer in zip(rows, mask["layers"]):
        cells = row.find_elements("css selector", "td.guess")
        assert [int(c.get_attribute("data-id")) for c in cells] == [g["id"] for g in layer["guesses"]]
        assert [float(c.get_attribute("data-p")) for c in cells] == [g["p"] for g in layer["guesses"]]
    last = rows[-1].find_elements("css selector", "td.guess")
    assert [int(c.get_attribute("data-id")) for c in last] == [p["token"] for p in proposals]
    np.testing.assert_allclose([float(c.get_attribute("data-p")) for c in last], [p["score"] for p in proposals],
                               rtol=1e-3)
    assert [c.text.split()[-1] for c in last] == [p["token_str"] for p in proposals]
    assert last[0].text.split()[0] == f"{proposals[0]['score']:.3f}"
    assert "no norm applied" in find(browser, "#lens-note")[0].text


def test_a_model_without_lm_head_says_so(browser, pages):
    opened(browser, pages, "bare")
    notice = find(browser, "#no-predictions")[0].text
    assert "has no weights for the language-model head" in notice and not find(browser, "table.lens")
    assert find(browser, "#lens-note")[0].text == ""  # (no lens to explain)


def test_the_screenshot_is_not_blank(browser, pages):
    from PIL import Image

    opened(browser, pages, "shipped")
    find(browser, "button.head-cell[data-layer='1'][data-head='2']")[0].click()
    picture = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    pixels = np.asarray(picture).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 100  # text, maps, colour bar: many colours
    assert 0.02 < (pixels.sum(axis=1) < 600).mean() < 0.6  # some ink on a light page


def test_a_page_of_many_tokens_draws(browser, tmp_path):
    text = " ".join(["la servante ouvrit la fenêtre , puis elle regarda la <special1> ."] * 11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exploration = explore(text)
    path = exploration.save(tmp_path / "long.html")
    assert len(exploration.data["tokens"]) >= 128 and path.stat().st_size < 2_000_000
    opened(browser, {"long": (exploration, path)}, "long")
    assert len(find(browser, "table.lens")) == 11
    find(browser, "button.head-cell[data-layer='3'][data-head='3']")[0].click()
    assert json.loads(browser.execute_script("return JSON.stringify(document.body.dataset)"))["ready"] == "true"
