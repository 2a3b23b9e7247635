"""The page `psae browse` writes, opened from file:// in a real headless Chromium.

Without Chromium this FAILS (CI installs it: see .ci/run); it is never skipped.
"""

from __future__ import annotations

import json

import pytest

from progressive_sae.interp.browser.page import read_embedded
from tests.interp.browser.chromium import Chromium, chromium_path
from tests.interp.browser.conftest import EXPLAINED, NUM_LATENTS


def embedded_payload(page) -> dict:
    return read_embedded(page.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.fail("Chromium is not installed: the browser test needs it "
                    "(apt-get install -y chromium; .ci/run does this)")
    chromium = Chromium(executable)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def opened(browser, setting):
    browser.call("Emulation.setDeviceMetricsOverride", session=True, width=1280,
                 height=1600, deviceScaleFactor=1, mobile=False)
    browser.navigate(setting["page"].resolve().as_uri())
    browser.wait_for("document.body && document.body.getAttribute('data-ready') === '1'")
    return browser


def rows(browser) -> list[int]:
    return browser.evaluate("[...document.querySelectorAll('#spacer .row')]"
                            ".sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))"
                            ".map(r => Number(r.dataset.latent))")


def search(browser, text: str) -> None:
    browser.evaluate("(() => { const s = document.getElementById('search'); s.value = '';"
                     " s.focus(); s.dispatchEvent(new Event('input')); })()")
    if text:
        browser.type_text(text)
    browser.wait_for(f"document.getElementById('search').value === {json.dumps(text)}")
    browser.evaluate("new Promise(r => setTimeout(r, 150))")  # the input is debounced


def test_list_search_sort_and_detail(opened, setting):
    b = opened
    payload = embedded_payload(setting["page"])
    assert b.evaluate("document.getElementById('count').textContent") == \
        f"{NUM_LATENTS} latents"
    assert rows(b) == list(range(NUM_LATENTS))

    # search by explanation: only the explained latents that mention cats
    search(b, "cats")
    cats = sorted(j for j, e in EXPLAINED.items() if "cats" in e)
    assert sorted(rows(b)) == cats
    assert b.evaluate("document.getElementById('count').textContent") == \
        f"{len(cats)} of {NUM_LATENTS} latents"
    search(b, "#7")
    assert rows(b) == [7]
    search(b, "no latent matches this")
    assert rows(b) == []
    search(b, "")
    assert len(rows(b)) == NUM_LATENTS

    # sort by frequency: descending first, ascending on a second click (ties by index)
    freq = dict(zip(payload["latents"]["index"], payload["latents"]["frequency"]))
    b.evaluate("document.querySelector('[data-sort=frequency]').click()")
    assert rows(b) == sorted(freq, key=lambda j: (-freq[j], j))
    b.evaluate("document.querySelector('[data-sort=frequency]').click()")
    assert rows(b) == sorted(freq, key=lambda j: (freq[j], j))
    # sort by a score: latents without one go last
    b.evaluate("document.querySelector('[data-sort=\"score:simulation\"]').click()")
    assert rows(b)[:len(EXPLAINED)] == sorted(EXPLAINED, reverse=True)

    # select the most frequent latent: its windows as heat-maps with values on hover
    top = max(freq, key=lambda j: (freq[j], -j))
    b.evaluate(f"document.querySelector('#spacer .row[data-latent=\"{top}\"]').click()")
    b.wait_for(f"document.querySelector('#detail h2')?.textContent === 'Latent {top}'")
    detail = payload["details"][payload["latents"]["index"].index(top)]
    assert b.evaluate("document.querySelectorAll('#detail .top .window').length") == \
        len(detail["top"]) > 0
    spans = b.evaluate("[...document.querySelectorAll('#detail .top .window')[0]"
                       ".querySelectorAll('span.tok')].map(s => [s.dataset.act, s.title])")
    ids, sparse = detail["top"][0]
    assert len(spans) == len(ids)
    acts = dict(zip(sparse[::2], sparse[1::2]))
    for position, (value, title) in enumerate(spans):
        assert float(value) == pytest.approx(acts.get(position, 0.0))
        assert "activation" in title
    assert max(float(v) for v, _ in spans) > 0
    assert b.evaluate("document.querySelectorAll('#detail h3.quantile').length") == \
        len(detail["quantiles"]) > 0
    assert b.evaluate("document.querySelectorAll('#detail svg.hist rect').length") == \
        len(detail["histogram"]["counts"]) > 0
    assert b.evaluate("document.querySelectorAll('#detail table.logits')[0]"
                      ".querySelectorAll('tr').length") == len(detail["promoted"]) == 10
    assert b.evaluate("document.querySelector('#spacer .row.selected').dataset.latent") == \
        str(top)

    # a neighbour is a link to that latent
    neighbour = detail["neighbors"][0][0]
    b.evaluate(f"document.querySelector('#detail a.chip[data-latent=\"{neighbour}\"]').click()")
    b.wait_for(f"document.querySelector('#detail h2')?.textContent === 'Latent {neighbour}'")
    # the arrow keys walk the list in its current (score) order
    order = rows(b)
    b.call("Input.dispatchKeyEvent", session=True, type="keyDown", key="ArrowDown",
           code="ArrowDown", windowsVirtualKeyCode=40)
    after = order[order.index(neighbour) + 1]
    b.wait_for(f"document.querySelector('#detail h2')?.textContent === 'Latent {after}'")


def test_tokens_are_text_never_markup(opened, setting):
    """The text holds `<script>alert(1)</script>` and an explanation holds `<b>`: both show
    as text; nothing of theirs becomes an element or runs."""
    b = opened
    payload = embedded_payload(setting["page"])
    assert any("<" in t for t in payload["tokens"].values())
    for latent in (3, *payload["latents"]["index"][:5]):
        b.evaluate(f"location.hash = 'latent-{latent}'")
        b.wait_for(f"document.querySelector('#detail h2')?.textContent === 'Latent {latent}'")
        assert b.evaluate("document.scripts.length") == 2  # the data and the page's script
        assert b.evaluate("document.querySelectorAll('#detail span.tok *, #detail td.t *, "
                          "#detail .explanation *').length") == 0
        if latent == 3:
            assert b.evaluate("document.querySelector('#detail .explanation').textContent") \
                == EXPLAINED[3]
    shown = b.evaluate("[...document.querySelectorAll('#detail span.tok')]"
                       ".map(s => s.textContent).join('')")
    assert "script" in shown and "<" in shown
    assert not any(e.get("method") == "Page.javascriptDialogOpening" for e in b._events)
    assert b.console_errors() == []
