"""One self-contained HTML page from a browser payload: inline CSS and JS, the data embedded.

The page needs no server and no network (it works from file://). The payload travels as
JSON lines, gzip-compressed and base64-encoded inside a `<script type="application/gzip">`
element: line 0 is the payload without its details, line i the details of latent row i-1.
The script decompresses it with the browser's DecompressionStream and parses line i only
when latent row i-1 is selected, so a 16k-latent page opens quickly. Base64 holds no `<`,
so no token text (a token may well be `</script>`) can close the element; the script
escapes every string again before it reaches the DOM.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
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
<script type="application/gzip" id="psae-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def embed_json(payload: dict[str, Any]) -> str:
    """The payload as gzip-compressed, base64-encoded JSON lines (see the module docstring)."""
    head = {key: value for key, value in payload.items() if key != "details"}
    lines = [head, *payload.get("details", [])]
    text = "\n".join(json.dumps(line, ensure_ascii=False, allow_nan=False,
                                separators=(",", ":")) for line in lines)
    # Level 1: several times faster than the default on large pages, and nearly as small.
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=1)).decode()


def read_embedded(page: str) -> dict[str, Any]:
    """The payload embedded in a page's HTML (the inverse of `embed_json` inside it)."""
    match = re.search(r'<script type="application/gzip" id="psae-data">([^<]*)</script>', page)
    if match is None:
        raise ValueError("no embedded browser payload in this page")
    head, *details = gzip.decompress(base64.b64decode(match.group(1))).decode().split("\n")
    return {**json.loads(head), "details": [json.loads(line) for line in details]}


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
