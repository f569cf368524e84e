"""The single self-contained search page served at ``/`` (inline CSS and JS, no external resources)."""

from __future__ import annotations

import json

from polyir.languages import LANGUAGE_NAMES

MAX_QUERY_CHARS = 1000
MAX_K = 100


def render_page(languages: dict[str, int], passages: int, model: str) -> str:
    """The single self-contained search page (inline CSS and JS, no external resources)."""
    data = json.dumps(
        {"languages": [{"code": c, "name": LANGUAGE_NAMES.get(c, c), "count": n} for c, n in languages.items()],
         "passages": passages, "model": model, "maxK": MAX_K, "maxChars": MAX_QUERY_CHARS},
        ensure_ascii=False,
    ).replace("</", "<\\/")
    return _PAGE.replace("__DATA__", data)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>polyir search</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2430; background: #f6f7f9; }
  body { max-width: 920px; margin: 2rem auto; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; }
  .sub { color: #5b6575; margin-top: 0; font-size: .9rem; }
  form { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 1rem; }
  .row { display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; }
  #query { flex: 1; min-width: 16rem; font-size: 1rem; padding: .5rem; border: 1px solid #b9c0cc; border-radius: 6px; }
  button { font-size: 1rem; padding: .5rem 1.1rem; border: 0; border-radius: 6px; background: #2f5bd3; color: #fff; cursor: pointer; }
  label.small { font-size: .85rem; color: #39424f; }
  input[type=number] { width: 4.5rem; padding: .3rem; }
  fieldset { border: 0; padding: 0; margin: .8rem 0 0; }
  legend { font-size: .85rem; color: #39424f; margin-bottom: .3rem; }
  .langs label { display: inline-block; margin: 0 .6rem .3rem 0; font-size: .85rem; }
  #status { margin: 1rem 0 .4rem; color: #39424f; font-size: .9rem; min-height: 1.2em; }
  #error { color: #b3261e; font-weight: 600; }
  #language-bar { display: flex; height: 1.6rem; border-radius: 6px; overflow: hidden; background: #e4e7ec; }
  #language-bar .seg { display: flex; align-items: center; justify-content: center; color: #fff;
                       font-size: .8rem; white-space: nowrap; overflow: hidden; }
  #language-summary { font-size: .8rem; color: #5b6575; margin: .3rem 0 1rem; }
  ol#results { padding-left: 0; list-style: none; }
  li.hit { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: .6rem .8rem; margin-bottom: .5rem; }
  .meta { font-size: .8rem; color: #5b6575; display: flex; gap: .6rem; align-items: center; }
  .lang-tag { color: #fff; border-radius: 4px; padding: .05rem .4rem; font-weight: 600; }
  .text { margin: .35rem 0 0; }
</style>
</head>
<body>
<h1>polyir search</h1>
<p class="sub" id="about"></p>
<form id="search-form" autocomplete="off">
  <div class="row">
    <input id="query" name="query" type="search" placeholder="Ask in any language…" required>
    <button id="submit" type="submit">Search</button>
  </div>
  <div class="row" style="margin-top:.6rem">
    <label class="small">top k <input id="k" type="number" min="1" value="10"></label>
    <label class="small">per language (optional) <input id="per-language" type="number" min="1" placeholder="–"></label>
  </div>
  <fieldset>
    <legend>Languages (none ticked = all)</legend>
    <div class="langs" id="language-filter"></div>
  </fieldset>
</form>
<div id="status" role="status"></div>
<div id="language-bar" aria-label="languages of the top results"></div>
<div id="language-summary"></div>
<ol id="results"></ol>
<script>
(function () {
  "use strict";
  var DATA = __DATA__;
  var PALETTE = ["#2f5bd3", "#d3542f", "#2e9e5b", "#8e44ad", "#c28a00", "#0f8b8d", "#c2185b",
                 "#5d6d7e", "#6d4c41", "#1e88e5", "#7cb342", "#f4511e", "#3949ab", "#00897b"];
  var colour = {};
  DATA.languages.forEach(function (l, i) { colour[l.code] = PALETTE[i % PALETTE.length]; });
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  $("about").textContent = DATA.passages.toLocaleString() + " passages in " + DATA.languages.length +
    " languages · model " + DATA.model;
  $("query").maxLength = DATA.maxChars;
  $("k").max = DATA.maxK;
  $("per-language").max = DATA.maxK;
  DATA.languages.forEach(function (l) {
    var label = el("label");
    var box = el("input");
    box.type = "checkbox"; box.value = l.code; box.name = "lang"; box.id = "lang-" + l.code;
    label.appendChild(box);
    label.appendChild(document.createTextNode(" " + l.code + " (" + l.name + ", " + l.count.toLocaleString() + ")"));
    $("language-filter").appendChild(label);
  });
  function showBar(counts, total) {
    var bar = $("language-bar"), summary = [];
    bar.textContent = "";
    Object.keys(counts).forEach(function (code) {
      var n = counts[code];
      var seg = el("div", "seg", code + " " + n);
      seg.dataset.lang = code; seg.dataset.count = String(n);
      seg.style.flexGrow = String(n);
      seg.style.background = colour[code] || "#777";
      seg.title = code + ": " + n + " of " + total;
      bar.appendChild(seg);
      summary.push(code + " " + n + "/" + total);
    });
    $("language-summary").textContent = summary.length ? "top " + total + " by language: " + summary.join(" · ") : "";
  }
  function showHits(hits) {
    var list = $("results");
    list.textContent = "";
    hits.forEach(function (h) {
      var li = el("li", "hit");
      li.dataset.lang = h.language; li.dataset.id = h.id;
      var meta = el("div", "meta");
      var tag = el("span", "lang-tag", h.language);
      tag.style.background = colour[h.language] || "#777";
      meta.appendChild(el("span", "rank", "#" + h.rank));
      meta.appendChild(tag);
      meta.appendChild(el("span", "score", h.score.toFixed(4)));
      meta.appendChild(el("span", "pid", h.id));
      li.appendChild(meta);
      if (h.title) li.appendChild(el("div", "title", h.title));
      li.appendChild(el("p", "text", h.text));
      list.appendChild(li);
    });
  }
  $("search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var langs = Array.prototype.map.call(document.querySelectorAll("#language-filter input:checked"),
                                         function (b) { return b.value; });
    var body = { query: $("query").value, k: parseInt($("k").value || "10", 10) };
    if (langs.length) body.languages = langs;
    var per = $("per-language").value;
    if (per) body.per_language = parseInt(per, 10);
    $("status").textContent = "searching…";
    fetch("search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, status: r.status, body: j }; }); })
      .then(function (res) {
        if (!res.ok) {
          showHits([]);
          showBar({}, 0);
          $("status").textContent = "";
          var err = el("span", "", "error " + res.status + ": " + res.body.detail);
          err.id = "error";
          $("status").appendChild(err);
          return;
        }
        showHits(res.body.hits);
        showBar(res.body.language_counts, res.body.hits.length);
        $("status").textContent = res.body.hits.length + " results in " + res.body.took_ms + " ms";
        document.body.dataset.searches = String(parseInt(document.body.dataset.searches || "0", 10) + 1);
      })
      .catch(function (e) { $("status").textContent = "request failed: " + e; });
  });
})();
</script>
</body>
</html>
"""
