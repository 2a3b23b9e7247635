/* The feature browser. Decodes the payload embedded in #psae-data (gzip-compressed JSON
   lines, base64; see page.py and payload.py for the schema), draws a searchable, sortable
   latent list and, on selection only, parses and draws one latent's detail. The list is
   virtual (only the rows in view exist in the DOM) so 16k latents stay fast. Every string
   from the payload goes through esc() before it reaches innerHTML. */
(async function () {
  "use strict";
  async function loadLines() {
    const raw = atob(document.getElementById("psae-data").textContent.trim());
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return (await new Response(stream).text()).split("\n");
  }
  if (typeof DecompressionStream === "undefined") {
    document.getElementById("detail").textContent =
      "This browser cannot decompress the page's data (no DecompressionStream): " +
      "use a current Chromium, Firefox or Safari.";
    return;
  }
  const LINES = await loadLines();
  const D = JSON.parse(LINES[0]);
  const detailOf = (i) => JSON.parse(LINES[i + 1]);
  const L = D.latents;
  const N = L.index.length;
  const TOK = D.tokens;
  const SCORES = D.score_names || [];
  const HAS_EXPL = L.explanation.some((e) => e);
  const ROW = 26;

  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
  const tok = (id) => (TOK[id] !== undefined ? TOK[id] : "\u27E8" + id + "\u27E9");
  const chipText = (s) => s.replace(/ /g, "\u2423");

  function fmt(v) {
    if (v === null || v === undefined) return "\u2013";
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1000) return v.toFixed(0);
    if (a >= 0.01) return String(Number(v.toPrecision(3)));
    return v.toExponential(1);
  }
  function pct(f) {
    if (f === null || f === undefined) return "\u2013";
    if (f === 0) return "0%";
    const p = f * 100;
    return p >= 0.01 ? Number(p.toPrecision(3)) + "%" : p.toExponential(1) + "%";
  }

  // --- columns ---------------------------------------------------------------------------
  const columns = [
    {key: "index", label: "#", num: true, value: (i) => L.index[i], show: (i) => L.index[i], w: "64px"},
    {key: "frequency", label: "freq", num: true, value: (i) => L.frequency[i],
     show: (i) => pct(L.frequency[i]), w: "72px"},
    {key: "max", label: "max act", num: true, value: (i) => L.max[i],
     show: (i) => fmt(L.max[i]), w: "72px"},
  ];
  for (const name of SCORES) {
    columns.push({key: "score:" + name, label: name, num: true, value: (i) => L.scores[name][i],
                  show: (i) => fmt(L.scores[name][i]), w: "86px"});
  }
  if (HAS_EXPL) {
    columns.push({key: "explanation", label: "explanation", num: false,
                  value: (i) => L.explanation[i], show: (i) => L.explanation[i] || "", w: "minmax(90px, 2fr)"});
  }
  columns.push({key: "top_tokens", label: "top tokens", num: false,
                value: (i) => L.top_tokens[i].map(tok).join(" "),
                show: (i) => L.top_tokens[i].map((t) => chipText(tok(t))).join(" "), w: "minmax(80px, 1fr)"});
  document.documentElement.style.setProperty("--cols", columns.map((c) => c.w).join(" "));

  const haystack = new Array(N);
  for (let i = 0; i < N; i++) {
    haystack[i] = ("#" + L.index[i] + " " + (L.explanation[i] || "") + " " +
                   L.top_tokens[i].map(tok).join(" ")).toLowerCase();
  }
  const rowOf = new Map();
  for (let i = 0; i < N; i++) rowOf.set(L.index[i], i);

  // --- state -----------------------------------------------------------------------------
  let order = [];
  let sortKey = "index", sortDir = 1;
  let selected = -1;

  function filterAndSort() {
    const q = $("search").value.trim().toLowerCase();
    const words = q.split(/\s+/).filter((w) => w);
    const number = /^#?\d+$/.test(q) ? Number(q.replace("#", "")) : null;
    const rows = [];
    for (let i = 0; i < N; i++) {
      if (number !== null) {
        if (L.index[i] === number) rows.push(i);
        continue;
      }
      if (words.every((w) => haystack[i].includes(w))) rows.push(i);
    }
    const col = columns.find((c) => c.key === sortKey);
    rows.sort((a, b) => {
      const x = col.value(a), y = col.value(b);
      const xn = x === null || x === undefined || x === "", yn = y === null || y === undefined || y === "";
      if (xn || yn) return xn === yn ? a - b : (xn ? 1 : -1);  // missing values last
      const c = col.num ? x - y : String(x).localeCompare(String(y));
      return c !== 0 ? sortDir * c : a - b;
    });
    order = rows;
    $("count").textContent = rows.length === N ? N + " latents"
                                               : rows.length + " of " + N + " latents";
    $("spacer").style.height = rows.length * ROW + "px";
    drawHead();
    drawRows(true);
  }

  function drawHead() {
    $("head").innerHTML = columns.map((c) => {
      const cls = (c.num ? "num " : "") + (c.key === sortKey ? "sorted " + (sortDir > 0 ? "asc" : "desc") : "");
      return '<div class="' + cls + '" data-sort="' + esc(c.key) + '" title="sort by ' + esc(c.label) +
             '">' + esc(c.label) + "</div>";
    }).join("");
  }

  let drawn = "";
  function drawRows(force) {
    const list = $("list");
    const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 10);
    const last = Math.min(order.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + 10);
    const key = first + ":" + last;
    if (!force && key === drawn) return;
    drawn = key;
    const html = [];
    for (let r = first; r < last; r++) {
      const i = order[r];
      html.push('<div class="row grid' + (i === selected ? " selected" : "") + '" data-latent="' +
                L.index[i] + '" style="top:' + r * ROW + 'px">' +
                columns.map((c) => '<div class="' + (c.num ? "num" : "") + '">' + esc(c.show(i)) +
                                   "</div>").join("") + "</div>");
    }
    $("spacer").innerHTML = html.join("");
  }

  // --- detail ----------------------------------------------------------------------------
  function heat(window, scale) {
    const ids = window[0], sparse = window[1];
    const acts = new Array(ids.length).fill(0);
    let peak = 0;
    for (let s = 0; s < sparse.length; s += 2) {
      acts[sparse[s]] = sparse[s + 1];
      peak = Math.max(peak, sparse[s + 1]);
    }
    const parts = ['<div class="window"><span class="wmax" title="max activation in this window">' +
                   fmt(peak) + "</span>"];
    for (let t = 0; t < ids.length; t++) {
      const a = acts[t] || 0;
      const text = tok(ids[t]);
      const alpha = scale > 0 ? Math.min(1, a / scale) : 0;
      const style = a > 0 ? ' style="background:rgba(255,110,20,' + (0.12 + 0.78 * alpha).toFixed(3) + ')"' : "";
      parts.push('<span class="tok' + (a > 0 ? " on" : "") + '" data-act="' + a + '"' + style +
                 ' title="' + esc(JSON.stringify(text) + "  activation " + fmt(a)) + '">' +
                 esc(text) + "</span>");
    }
    parts.push("</div>");
    return parts.join("");
  }

  function histogram(h) {
    if (!h || !h.counts || !h.counts.length) return '<div class="muted">no activations recorded</div>';
    const W = 360, H = 110, pad = 18, n = h.counts.length;
    const top = Math.max(...h.counts.map((c) => Math.log1p(c))) || 1;
    const bw = (W - 2 * pad) / n;
    const bars = h.counts.map((c, b) => {
      const bh = (H - 2 * pad) * Math.log1p(c) / top;
      return '<rect x="' + (pad + b * bw).toFixed(1) + '" y="' + (H - pad - bh).toFixed(1) +
             '" width="' + Math.max(0.5, bw - 0.6).toFixed(1) + '" height="' + bh.toFixed(1) +
             '" fill="#f07a2a"><title>[' + fmt(h.edges[b]) + ", " + fmt(h.edges[b + 1]) + "): " + c +
             "</title></rect>";
    }).join("");
    return '<svg class="hist" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + " " + H + '">' +
           '<line x1="' + pad + '" y1="' + (H - pad) + '" x2="' + (W - pad) + '" y2="' + (H - pad) +
           '" stroke="#999"/>' + bars +
           '<text x="' + pad + '" y="' + (H - 4) + '">' + fmt(h.edges[0]) + "</text>" +
           '<text x="' + (W - pad) + '" y="' + (H - 4) + '" text-anchor="end">' + fmt(h.edges[n]) +
           "</text>" + '<text x="' + pad + '" y="11">count (log scale) of non-zero activations</text></svg>';
  }

  function neighbors(list) {
    if (!list || !list.length) return '<div class="muted">none</div>';
    return list.map(([j, cos]) => rowOf.has(j)
      ? '<a class="chip" href="#latent-' + j + '" data-latent="' + j + '" title="decoder cosine ' +
        fmt(cos) + '">#' + j + " <span class=\"muted\">" + fmt(cos) + "</span></a>"
      : '<span class="chip out" title="not on this page; decoder cosine ' + fmt(cos) + '">#' + j +
        " " + fmt(cos) + "</span>").join("");
  }

  function logitTable(list, title) {
    if (!list) return "";
    return '<div><b>' + esc(title) + '</b><table class="logits">' + list.map(([t, v]) =>
      '<tr><td class="t">' + esc(chipText(tok(t))) + '</td><td class="num">' + fmt(v) +
      "</td></tr>").join("") + "</table></div>";
  }

  function showDetail(i) {
    const x = detailOf(i);
    const id = L.index[i];
    const scale = L.max[i] || 0;
    const html = ['<h2>Latent ' + id + "</h2>"];
    if (L.explanation[i]) html.push('<div class="explanation">' + esc(L.explanation[i]) + "</div>");
    const stats = ["frequency " + pct(L.frequency[i]), "max activation " + fmt(L.max[i])];
    for (const name of SCORES) stats.push(name + " " + fmt(L.scores[name][i]));
    html.push('<div class="stats">' + stats.map((s) => "<span>" + esc(s) + "</span>").join("") + "</div>");
    html.push('<div class="flex"><div><h3>Activation histogram</h3>' + histogram(x.histogram) +
              "</div><div><h3>Nearest latents (decoder cosine)</h3>" + neighbors(x.neighbors) + "</div></div>");
    if (x.promoted || x.suppressed) {
      html.push("<h3>Logit effect (decoder row \u2192 final norm \u2192 unembedding)</h3>" +
                '<div class="flex">' + logitTable(x.promoted, "promotes") +
                logitTable(x.suppressed, "suppresses") + "</div>");
    }
    html.push('<h3>Top activating windows</h3><div class="top">' +
              (x.top.length ? x.top.map((w) => heat(w, scale)).join("") : '<div class="muted">none</div>') +
              "</div>");
    for (const q of x.quantiles || []) {
      html.push('<h3 class="quantile">' + esc(q.label) + "</h3>" +
                q.windows.map((w) => heat(w, scale)).join(""));
    }
    $("detail").innerHTML = html.join("");
    $("detail").scrollTop = 0;
  }

  function select(id) {
    const i = rowOf.get(id);
    if (i === undefined) return;
    selected = i;
    showDetail(i);
    const r = order.indexOf(i), list = $("list");
    if (r >= 0 && (r * ROW < list.scrollTop || (r + 1) * ROW > list.scrollTop + list.clientHeight)) {
      list.scrollTop = Math.max(0, r * ROW - list.clientHeight / 2);
    }
    drawRows(true);
    document.title = D.title + " \u2013 latent " + id;
  }

  function fromHash() {
    const m = /^#latent-(\d+)$/.exec(location.hash);
    if (m) select(Number(m[1]));
  }

  // --- wiring ----------------------------------------------------------------------------
  $("title").textContent = D.title;
  $("meta").innerHTML = Object.entries(D.meta || {}).filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => "<span><b>" + esc(k) + "</b> " + esc(v) + "</span>").join("");
  let timer = null;
  $("search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { $("list").scrollTop = 0; filterAndSort(); }, 40);
  });
  $("head").addEventListener("click", (e) => {
    const cell = e.target.closest("[data-sort]");
    if (!cell) return;
    const key = cell.getAttribute("data-sort");
    if (key === sortKey) sortDir = -sortDir;
    else { sortKey = key; sortDir = key === "index" || key === "explanation" || key === "top_tokens" ? 1 : -1; }
    filterAndSort();
  });
  $("list").addEventListener("scroll", () => drawRows(false));
  window.addEventListener("resize", () => drawRows(true));
  $("spacer").addEventListener("click", (e) => {
    const row = e.target.closest(".row");
    if (row) location.hash = "latent-" + row.getAttribute("data-latent");
  });
  window.addEventListener("hashchange", fromHash);
  document.addEventListener("keydown", (e) => {  // arrow keys walk the (filtered) list,
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;  // from the search box too
    if (!order.length) return;
    const r = order.indexOf(selected);
    const next = r < 0 ? 0 : Math.min(order.length - 1, Math.max(0, r + (e.key === "ArrowDown" ? 1 : -1)));
    location.hash = "latent-" + L.index[order[next]];
    e.preventDefault();
  });
  filterAndSort();
  if (location.hash) fromHash();
  else if (N) $("detail").innerHTML = '<div class="empty">Select a latent on the left.</div>';
  else $("detail").innerHTML = '<div class="empty">No latents to show.</div>';
  document.body.setAttribute("data-ready", "1");
})();
