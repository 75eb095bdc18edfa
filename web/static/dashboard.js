/* The tenant dashboard: live numbers over the websocket, the week from the REST summary, the
   recent-events feed, and the snippet's copy button. Every value from a visitor is set with
   textContent, never parsed as HTML. */
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.dataset.live) return;

  var SVG = "http://www.w3.org/2000/svg";
  var FEED_SIZE = 20;
  // Labels of the event types, from the server's one table of them.
  var LABELS = JSON.parse(main.dataset.eventLabels || "{}");
  var statusBox = document.getElementById("status");
  var statusText = document.getElementById("status-text");
  var statusDetail = document.getElementById("status-detail");
  var feed = document.getElementById("feed");
  var feedEmpty = document.getElementById("feed-empty");
  var seen = {};
  var eventsFromSocket = false;

  // The text is announced to screen readers when it changes; the countdown beside it is not.
  function setStatus(state, text, detail) {
    statusBox.dataset.state = state;
    if (statusText.textContent !== text) statusText.textContent = text;
    statusDetail.textContent = detail || "";
  }

  function formatNumber(value) {
    return typeof value === "number" ? value.toLocaleString() : "–";
  }

  function formatDuration(seconds) {
    if (typeof seconds !== "number") return "–";
    var m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return m ? m + " min " + s + " s" : s + " s";
  }

  function show(selector, data, format) {
    document.querySelectorAll(selector).forEach(function (el) {
      var name = el.dataset.stat || el.dataset.week;
      if (!(name in data)) return;
      var text = format(name, data[name]);
      if (el.textContent !== text) {
        el.textContent = text;
        el.classList.remove("bump");
        void el.offsetWidth; // restart the highlight animation
        el.classList.add("bump");
      }
    });
  }

  // --- live numbers ---------------------------------------------------------------------
  var days = null, liveVisitors = null;

  function showToday(data) {
    show("[data-stat]", data, function (_, v) { return formatNumber(v); });
    if (typeof data.visitors_today === "number" && data.visitors_today !== liveVisitors) {
      liveVisitors = data.visitors_today;
      if (days) drawChart(days);
    }
  }

  // The server sends at least a ping every 20 s: silence for longer means a dead link.
  var SILENCE_MS = 45000;
  var attempt = 0, socket = null, retryTimer = null, watchdog = null, signedOut = false;

  function heard() {
    clearTimeout(watchdog);
    watchdog = setTimeout(function () {
      // A dead link may take long to report its close: give up on it now.
      var dead = socket;
      if (!dead) return;
      dead.onclose = null;
      dead.close();
      socket = null;
      retry();
    }, SILENCE_MS);
  }

  function connect() {
    clearTimeout(retryTimer);
    if (signedOut) return;
    setStatus("connecting", "Connecting…");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    try {
      socket = new WebSocket(scheme + location.host + main.dataset.live);
    } catch (e) {
      return retry();
    }
    var opened = false;
    socket.onopen = function () { opened = true; heard(); };
    socket.onmessage = function (message) {
      heard();
      var msg;
      try { msg = JSON.parse(message.data); } catch (e) { return; }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "snapshot" || msg.type === "update") {
        attempt = 0;
        setStatus("live", "Live");
        if (msg.data && typeof msg.data === "object") showToday(msg.data);
        if (msg.type === "update") {
          scheduleSummary();
          if (!eventsFromSocket) scheduleFeed();
        }
      } else if (msg.type === "event") {
        eventsFromSocket = true;
        addEvents([msg.data || msg.event || msg], true);
      }
      // Other message types are for newer dashboards: ignored.
    };
    socket.onclose = function () {
      clearTimeout(watchdog);
      socket = null;
      // A refused handshake says nothing about why: the summary's answer tells a lost
      // session (401, stop) from a server that is away (retry).
      if (!opened) loadSummary();
      retry();
    };
    socket.onerror = function () { /* onclose follows */ };
  }

  function retry() {
    if (signedOut) return;
    // Exponential backoff with jitter, capped at 30 s, so a restarted server is not stampeded.
    var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    attempt = Math.min(attempt + 1, 10);
    var until = Date.now() + delay;
    (function countdown() {
      var left = Math.ceil((until - Date.now()) / 1000);
      setStatus("reconnecting", "Reconnecting", " in " + Math.max(left, 1) + " s…");
      retryTimer = left > 1 ? setTimeout(countdown, 1000) : setTimeout(connect, Math.max(until - Date.now(), 0));
    })();
  }

  function signOut() {
    // The session ended (logout elsewhere, expiry): retrying cannot help, logging in can.
    signedOut = true;
    clearTimeout(retryTimer);
    if (socket) socket.close();
    setStatus("offline", "Signed out");
    var link = document.createElement("a");
    link.href = "/login";
    link.textContent = " · log in again";
    statusDetail.textContent = "";
    statusDetail.appendChild(link);
    statusDetail.removeAttribute("aria-hidden");
  }

  // --- the week -------------------------------------------------------------------------
  var summaryTimer = null, lastSummary = 0;

  function scheduleSummary() {
    if (summaryTimer) return;
    var wait = Math.max(0, lastSummary + 15000 - Date.now());
    summaryTimer = setTimeout(function () { summaryTimer = null; loadSummary(); }, wait);
  }

  function loadSummary() {
    lastSummary = Date.now();
    var note = document.getElementById("week-error");
    fetch(main.dataset.summary, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) signOut();
        return r.json().then(function (body) { return [r.ok, body]; });
      })
      .then(function (result) {
        var body = result[1];
        if (!result[0] || !body.success) throw new Error(body.error || "the summary is unavailable");
        note.hidden = true;
        show("[data-week]", body.data, function (name, v) {
          return name === "avg_time_on_page" ? formatDuration(v) : formatNumber(v);
        });
        days = body.data.last_7_days || [];
        drawChart(days);
      })
      .catch(function (error) {
        note.textContent = "The weekly summary could not be loaded (" + error.message + "); retrying.";
        note.hidden = false;
      });
  }

  function svg(name, attrs, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function drawChart(source) {
    // Today's bar follows the live count between two loads of the summary.
    var days = source.map(function (d, i) {
      var live = i === source.length - 1 && liveVisitors !== null && liveVisitors > d.visitors;
      return live ? { date: d.date, visitors: liveVisitors } : d;
    });
    var box = document.getElementById("chart");
    var W = 320, H = 160, top = 20, bottom = 24, gap = 8;
    var max = Math.max(1, Math.max.apply(null, days.map(function (d) { return d.visitors || 0; })));
    var bar = (W - gap * (days.length + 1)) / Math.max(days.length, 1);
    var summary = days.map(function (d) { return weekday(d.date) + " " + d.visitors; }).join(", ");
    var chart = svg("svg", {
      viewBox: "0 0 " + W + " " + H, role: "img", "class": "bars",
      "aria-label": "Unique visitors per day: " + summary
    });
    chart.appendChild(svg("line", { x1: 0, x2: W, y1: H - bottom, y2: H - bottom, "class": "axis" }));
    days.forEach(function (d, i) {
      var v = d.visitors || 0, h = (H - top - bottom) * v / max;
      var x = gap + i * (bar + gap), y = H - bottom - h;
      var today = i === days.length - 1;
      chart.appendChild(svg("rect", { x: x, y: y, width: bar, height: Math.max(h, v ? 2 : 0), rx: 3, "class": today ? "bar today" : "bar" }));
      chart.appendChild(svg("text", { x: x + bar / 2, y: y - 5, "text-anchor": "middle", "class": "value" }, String(v)));
      chart.appendChild(svg("text", { x: x + bar / 2, y: H - 6, "text-anchor": "middle", "class": "label" }, today ? "Today" : weekday(d.date)));
    });
    box.replaceChildren(chart);
  }

  function weekday(iso) {
    var parts = String(iso).split("-").map(Number);
    var date = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2]));
    return isNaN(date) ? String(iso) : date.toLocaleDateString(undefined, { weekday: "short", timeZone: "UTC" });
  }

  // --- recent events ----------------------------------------------------------------------
  var feedTimer = null;

  function scheduleFeed() {
    if (feedTimer) return;
    feedTimer = setTimeout(function () { feedTimer = null; loadFeed(); }, 500);
  }

  function loadFeed() {
    fetch(main.dataset.events, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.success && Array.isArray(body.events)) addEvents(body.events.slice().reverse(), true);
      })
      .catch(function () {});
  }

  function describe(event) {
    var meta = event.metadata && typeof event.metadata === "object" ? event.metadata : {};
    return Object.keys(meta).map(function (k) {
      var v = meta[k];
      if (k === "seconds" && typeof v === "number") v = formatDuration(v);
      return k + ": " + (typeof v === "string" ? v : JSON.stringify(v));
    }).join(" · ");
  }

  function addEvents(events, newestFirst) {
    events.forEach(function (event) {
      if (!event || typeof event !== "object") return;
      var key = [event.ts, event.event_type, JSON.stringify(event.metadata || {})].join("|");
      if (seen[key]) return;
      seen[key] = true;
      var li = document.createElement("li");
      var head = document.createElement("p");
      var when = document.createElement("time");
      var date = new Date(Number(event.ts) || Date.now());
      when.dateTime = date.toISOString();
      when.textContent = date.toLocaleTimeString();
      var type = document.createElement("strong");
      type.textContent = LABELS[event.event_type] || String(event.event_type || event.type || "event");
      head.append(when, " ", type);
      li.appendChild(head);
      var details = describe(event);
      if (details) {
        var p = document.createElement("p");
        p.className = "detail";
        p.textContent = details;
        li.appendChild(p);
      }
      var agent = event.visitor || event.user_agent || event.ua;
      var page = event.page || event.referrer;
      if (page || agent) {
        var small = document.createElement("p");
        small.className = "detail muted";
        small.textContent = [page && "on " + page, agent].filter(Boolean).join(" · ");
        li.appendChild(small);
      }
      if (newestFirst) feed.insertBefore(li, feed.firstChild); else feed.appendChild(li);
    });
    while (feed.children.length > FEED_SIZE) feed.removeChild(feed.lastChild);
    feedEmpty.hidden = feed.children.length > 0;
  }

  // --- the snippet ------------------------------------------------------------------------
  var copy = document.getElementById("copy");
  var copyStatus = document.getElementById("copy-status");
  copy.addEventListener("click", function () {
    var text = document.getElementById("snippet").textContent;
    var done = function () { copyStatus.textContent = "Copied."; };
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents(document.getElementById("snippet"));
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      copyStatus.textContent = document.execCommand && document.execCommand("copy")
        ? "Copied." : "Selected: press Ctrl+C (or long-press and Copy) to copy.";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  });

  connect();
  loadSummary();
  loadFeed();
  setInterval(loadSummary, 60000);
})();
