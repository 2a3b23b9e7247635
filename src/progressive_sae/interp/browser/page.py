"""One self-contained HTML page from a browser payload: inline CSS and JS, the data embedded.

The page needs no server and no network (it works from file://): the payload sits in a
`<script type="application/json">` element that the inline script parses. Every `<`, `>`
and `&` inside that JSON is written as a \\u escape, so no token text (a token may well be
`</script>`) can close the element or open markup; the script escapes every string again
before it reaches the DOM.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from progressive_sae.atomic import write_bytes_atomic

PAGE_NAME = "index.html"

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header><h1 id="title">{title}</h1><div class="meta" id="meta"></div></header>
<main>
  <section id="left">
    <div id="controls">
      <input id="search" type="search" placeholder="search: latent #, explanation or token"
             autocomplete="off" spellcheck="false">
      <span id="count"></span>
    </div>
    <div id="head" class="grid"></div>
    <div id="list"><div id="spacer"></div></div>
  </section>
  <section id="detail"></section>
</main>
<script type="application/json" id="psae-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def embed_json(payload: dict[str, Any]) -> str:
    """The payload as JSON that is safe inside a <script> element (no raw <, > or &)."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _asset(name: str) -> str:
    return (resources.files("progressive_sae.interp.browser") / "assets" / name).read_text(
        encoding="utf-8")


def render_page(payload: dict[str, Any]) -> str:
    """The whole page as one HTML string."""
    js, css = _asset("browser.js"), _asset("browser.css")
    # The inline script and style are ours; a closing tag inside them would end them early.
    assert "</script" not in js.lower() and "</style" not in css.lower()
    return _TEMPLATE.format(
        title=html.escape(str(payload.get("title", "Feature browser"))),
        css=css, js=js, data=embed_json(payload),
    )


def write_page(payload: dict[str, Any], out_dir: str | Path) -> Path:
    """Write `out_dir/index.html` atomically; returns its path."""
    path = Path(out_dir) / PAGE_NAME
    write_bytes_atomic(path, render_page(payload).encode("utf-8"))
    path.chmod(0o644)  # a page to share, not a secret (the atomic write creates it 0600)
    return path
