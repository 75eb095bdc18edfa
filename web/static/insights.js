/* The dashboard's insights: a period picker, the period's totals against the period before
   (arrows with the change), leads and conversion, the series with the period before drawn
   faintly behind, breakdown cards (top values with bars, visitors/events/leads, "More"),
   and the Export CSV link. Values from visitors are set with textContent only. */
(function () {
  "use strict";
  var box = document.getElementById("insights");
  if (!box) return;

  var SVG = "http://www.w3.org/2000/svg";
  var TOP = 5, MORE = 100;
  var picker = document.getElementById("period");
  var exportLink = document.getElementById("export");
  var errorNote = document.getElementById("insights-error");
  var period = picker.value;
  var cards = [].slice.call(box.querySelectorAll(".card"));

  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok || !body.success) throw new Error(body.error || "unavailable");
          return body.data;
        });
      });
  }

  function number(v) { return typeof v === "number" ? v.toLocaleString() : "–"; }
  function percent(v) { return typeof v === "number" ? (v * 100).toFixed(1) + " %" : "–"; }

  function showTotals(data) {
    box.querySelectorAll("[data-total]").forEach(function (el) {
      var name = el.dataset.total;
      el.textContent = name === "conversion_rate" ? percent(data.totals[name]) : number(data.totals[name]);
    });
    box.querySelectorAll("[data-change]").forEach(function (el) {
      var name = el.dataset.change, now = data.totals[name], before = data.previous[name];
      el.classList.remove("up", "down");
      if (typeof now !== "number" || typeof before !== "number") { el.textContent = ""; return; }
      if (now === before) { el.textContent = "= same as before"; return; }
      var up = now > before;
      el.classList.add(up ? "up" : "down");
      var change = name === "conversion_rate"
        ? ((now - before) * 100).toFixed(1) + " pts"
        : before ? Math.round(Math.abs(now - before) / before * 100) + " %" : "new";
      el.textContent = (up ? "▲ " : "▼ ") + change.replace("-", "") + " vs before";
      el.setAttribute("aria-label", (up ? "up " : "down ") + change.replace("-", "") + " from the period before");
    });
  }

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function stepLabel(step) {
    if (step.hour) return step.hour.slice(11, 13);
    if (step.month) return step.month.slice(5);
    return step.date.slice(8);
  }

  function drawSeries(series, previous) {
    var W = 640, H = 180, top = 16, bottom = 22, n = Math.max(series.length, 1);
    var values = series.map(function (s) { return s.visitors || 0; });
    var before = previous.map(function (s) { return s.visitors || 0; });
    var max = Math.max(1, Math.max.apply(null, values.concat(before)));
    var slot = W / n, bar = Math.max(1, slot * 0.7);
    var chart = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "class": "bars",
      "aria-label": "Visitors per step: " + series.map(function (s, i) { return stepLabel(s) + " " + values[i]; }).join(", ") });
    chart.appendChild(el("line", { x1: 0, x2: W, y1: H - bottom, y2: H - bottom, "class": "axis" }));
    var every = Math.ceil(n / 12);
    series.forEach(function (s, i) {
      var x = i * slot + (slot - bar) / 2, scale = (H - top - bottom) / max;
      if (i < before.length) {
        var hb = before[i] * scale;
        chart.appendChild(el("rect", { x: x - bar * 0.15, y: H - bottom - hb, width: bar, height: hb, "class": "bar previous" }));
      }
      var h = values[i] * scale;
      chart.appendChild(el("rect", { x: x, y: H - bottom - h, width: bar, height: Math.max(h, values[i] ? 2 : 0), rx: 2, "class": "bar" }));
      if (i % every === 0) chart.appendChild(el("text", { x: x + bar / 2, y: H - 6, "text-anchor": "middle", "class": "label" }, stepLabel(s)));
    });
    document.getElementById("series").replaceChildren(chart);
    var first = series[0] || {};
    document.getElementById("series-step").textContent = first.hour ? "hour" : first.month ? "month" : "day";
  }

  function loadStats() {
    var url = box.dataset.stats + "?period=" + encodeURIComponent(period);
    return get(url).then(function (data) {
      showTotals(data);
      // The period before, for the faint bars: the same length, just before.
      var from = data.previous ? previousRange(data) : null;
      if (!from) return drawSeries(data.series, []);
      return get(box.dataset.stats + "?period=custom&from=" + from[0] + "&to=" + from[1])
        .then(function (before) { drawSeries(data.series, before.series); })
        .catch(function () { drawSeries(data.series, []); });
    });
  }

  function previousRange(data) {
    if (period === "today" || period === "yesterday" || period === "12mo") return null;
    var from = new Date(data.period.from + "T00:00:00Z"), to = new Date(data.period.to + "T00:00:00Z");
    var days = Math.round((to - from) / 86400000) + 1;
    var end = new Date(from - 86400000), start = new Date(end - (days - 1) * 86400000);
    return [start.toISOString().slice(0, 10), end.toISOString().slice(0, 10)];
  }

  function loadCard(card) {
    var dimension = card.dataset.dimension;
    var limit = card.dataset.expanded ? MORE : TOP;
    var url = box.dataset.breakdown + encodeURIComponent(dimension) + "?period=" + encodeURIComponent(period) + "&limit=" + limit;
    return get(url).then(function (data) {
      card.results = data.results;
      card.other = data.other;
      drawCard(card);
    });
  }

  function drawCard(card) {
    var metric = card.dataset.metric || "visitors";
    var results = (card.results || []).slice().sort(function (a, b) { return b[metric] - a[metric]; });
    var max = Math.max(1, Math.max.apply(null, results.map(function (r) { return r[metric]; })));
    var list = card.querySelector(".rows");
    list.replaceChildren.apply(list, results.map(function (r) {
      var li = document.createElement("li");
      var fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = (r[metric] / max * 100).toFixed(1) + "%";
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = r.value;
      name.title = r.value;
      var count = document.createElement("span");
      count.className = "count";
      count.textContent = number(r[metric]);
      li.append(fill, name, count);
      return li;
    }));
    card.querySelector(".empty").hidden = results.length > 0;
    var more = card.querySelector(".more");
    more.hidden = !card.dataset.expanded && !(card.other && card.other.visitors + card.other.events > 0);
    more.textContent = card.dataset.expanded ? "Less" : "More";
  }

  cards.forEach(function (card) {
    card.querySelectorAll("[data-metric]").forEach(function (button) {
      button.addEventListener("click", function () {
        card.dataset.metric = button.dataset.metric;
        card.querySelectorAll("[data-metric]").forEach(function (b) {
          b.setAttribute("aria-pressed", String(b === button));
        });
        drawCard(card);
      });
    });
    card.querySelector(".more").addEventListener("click", function () {
      if (card.dataset.expanded) delete card.dataset.expanded; else card.dataset.expanded = "1";
      loadCard(card).catch(showError);
    });
  });

  function showError(error) {
    errorNote.textContent = "Some numbers could not be loaded (" + error.message + "); retrying.";
    errorNote.hidden = false;
  }

  function loadAll() {
    errorNote.hidden = true;
    exportLink.href = box.dataset.export + "?period=" + encodeURIComponent(period);
    return Promise.all([loadStats()].concat(cards.map(loadCard))).catch(showError);
  }

  picker.addEventListener("change", function () {
    period = picker.value;
    box.dataset.loaded = "";
    loadAll().then(function () { box.dataset.loaded = period; });
  });
  loadAll().then(function () { box.dataset.loaded = period; });
  // Today and yesterday move as events arrive: refreshed with the live numbers' pace.
  setInterval(function () { if (period === "today") loadAll(); }, 30000);
})();
