/* Landing analytics tracker (see the README); it never throws into the page. */
(function (w, d) {
  var noop = function () {}, api = { track: noop };
  try {
    var s = d.currentScript, id = s && s.getAttribute("data-tenant");
    if (!/^[1-9]\d{0,15}$/.test(id)) throw 0;
    var url = new URL(s.src).origin + "/api/analytics/track",
      L = location, H = history, acc = 0, since = 0, last,
      send = function (type, meta) {
        try {
          var b = JSON.stringify({ tenant_id: +id, event_type: type, metadata: meta || {} });
          navigator.sendBeacon && navigator.sendBeacon(url, b) ||
            fetch(url, { method: "POST", body: b, keepalive: true, credentials: "omit" })["catch"](noop);
        } catch (e) {}
      },
      safe = function (f) {
        return function (e) { try { f(e) } catch (x) {} };
      },
      on = function (t, type, f) { t.addEventListener(type, safe(f), true) },
      path = function () { return L.pathname + L.search },
      tick = function () {
        var now = Date.now();
        if (since) acc += now - since;
        since = d.hidden ? 0 : now;
      },
      flush = function () {
        tick();
        var sec = Math.min(Math.round(acc / 100) / 10, 86400);
        acc = 0;
        sec && send("time_on_page", { seconds: sec, path: last });
      },
      view = function () {
        var m = { path: L.pathname, referrer: d.referrer }, q = new URLSearchParams(L.search);
        last = path();
        ["utm_source", "utm_medium", "utm_campaign"].forEach(function (k) { q.get(k) && (m[k] = q.get(k)) });
        send("pageview", m);
      },
      nav = safe(function () { path() != last && (flush(), view()) }),
      replace = H.replaceState;

    ["pushState", "replaceState"].forEach(function (k) {
      var orig = H[k];
      H[k] = function () {
        var r = orig.apply(this, arguments);
        nav();
        return r;
      };
    });
    on(w, "popstate", nav);
    on(w, "pagehide", flush);
    on(d, "visibilitychange", function () { d.hidden ? flush() : tick() });
    on(d, "click", function (e) {
      var t = e.target, m = {}, i, a, href;
      t = t.closest ? t : t.parentElement;
      var el = t.closest("[data-analytics]"), link = t.closest("a[href]");
      if (el) {
        for (i = 0; a = el.attributes[i]; i++)
          a.name.indexOf("data-analytics-") || (m[a.name.slice(15)] = a.value);
        send(el.getAttribute("data-analytics"), m);
      }
      if (link && !link.hasAttribute("data-analytics")) {
        href = link.href.slice(0, 200);
        /^(whatsapp:|https?:\/\/(wa\.me|api\.whatsapp\.com)([/?#]|$))/i.test(href) ?
          send("click_whatsapp", { href: href }) :
          /^tel:/i.test(href) && send("click_call", { href: href });
      }
    });

    tick();
    view();
    var q = new URLSearchParams(L.search), qs;
    if (q.get("src") == "qr" || q.get("utm_medium") == "qr") {
      send("qr_scan", { path: L.pathname });
      ["src", "utm_medium"].forEach(function (k) { q.get(k) == "qr" && q["delete"](k) });
      qs = "" + q;
      replace.call(H, H.state, "", L.pathname + (qs && "?" + qs) + L.hash);
      last = path();
    }
    api.track = function (type, meta) {
      send("" + type, meta && typeof meta == "object" ? meta : {});
    };
  } catch (e) {
    e === 0 && console.warn("t.js: no valid data-tenant, nothing sent");
  }
  w.analytics = w.analytics || api;
})(window, document);
