/* The dashboard's owner panels: ingest health in words, API tokens, share links and team.
   Every call is JSON with the CSRF header; every value is set with textContent. */
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.dataset.api) return;
  var API = main.dataset.api;
  var errorBox = document.getElementById("manage-error");

  function call(method, path, body) {
    var options = { method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json",
                 "X-CSRF-Token": main.dataset.csrf } };
    if (method !== "GET") options.body = JSON.stringify(body || {});
    return fetch(API + path, options).then(function (r) {
      return r.json().then(function (doc) {
        if (!r.ok || !doc.success) throw new Error(doc.error || ("HTTP " + r.status));
        errorBox.hidden = true;
        return doc.data;
      });
    }).catch(function (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
      throw error;
    });
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function day(iso) { return iso ? iso.slice(0, 10) : ""; }

  function copyButton(button, status, source) {
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent).then(
        function () { status.textContent = "Copied."; },
        function () { status.textContent = "Select the text and copy it."; });
    });
  }

  // --- ingest health ----------------------------------------------------------------
  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function loadHealth() {
    call("GET", "/health").then(function (data) {
      var t = data.totals, problems = [];
      if (t.bot) problems.push(plural(t.bot, "event from a crawler was", "events from crawlers were") + " ignored");
      if (t.rate_limited) problems.push("rate limit reached " + plural(t.rate_limited, "time", "times"));
      if (t.invalid) problems.push(plural(t.invalid, "event was", "events were") + " refused as malformed");
      var summary = document.getElementById("health-summary");
      var list = document.getElementById("health-problems");
      list.textContent = "";
      if (!problems.length) {
        summary.textContent = t.accepted ? "All events counted in the last hour (" + t.accepted + ")."
                                         : "No events in the last hour.";
      } else {
        summary.textContent = plural(t.accepted, "event", "events") + " counted in the last hour; but:";
        problems.forEach(function (p) { list.appendChild(el("li", p)); });
      }
    }).catch(function () {});
  }

  // --- tokens -----------------------------------------------------------------------
  function loadTokens() {
    call("GET", "/tokens").then(function (data) {
      var list = document.getElementById("token-list");
      list.textContent = "";
      data.tokens.forEach(function (t) {
        var item = el("li", undefined, "item");
        item.appendChild(el("strong", t.label || "(no label)"));
        var facts = "created " + day(t.created_at) + " · last used " + (day(t.last_used_at) || "never") +
          (t.expires_at ? " · expires " + day(t.expires_at) : "");
        item.appendChild(el("span", facts, "muted"));
        if (t.revoked_at) {
          item.appendChild(el("span", "revoked", "tag"));
        } else {
          var revoke = el("button", "Revoke", "button small");
          revoke.type = "button";
          revoke.setAttribute("aria-label", "Revoke token " + (t.label || t.id));
          revoke.addEventListener("click", function () {
            call("DELETE", "/tokens/" + t.id).then(loadTokens);
          });
          item.appendChild(revoke);
        }
        list.appendChild(item);
      });
    }).catch(function () {});
  }

  document.getElementById("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { label: document.getElementById("token-label").value };
    var days = document.getElementById("token-days").value;
    if (days) body.expires_in_days = parseInt(days, 10);
    call("POST", "/tokens", body).then(function (data) {
      document.getElementById("token-value").textContent = data.token;
      document.getElementById("token-secret").hidden = false;
      document.getElementById("token-copy-status").textContent = "";
      loadTokens();
    }).catch(function () {});
  });
  copyButton(document.getElementById("token-copy"), document.getElementById("token-copy-status"),
             document.getElementById("token-value"));

  // --- share links ------------------------------------------------------------------
  function loadShares() {
    call("GET", "/shares").then(function (data) {
      var list = document.getElementById("share-list");
      list.textContent = "";
      data.shares.forEach(function (s) {
        var item = el("li", undefined, "item");
        item.appendChild(el("strong", "Link " + s.id));
        item.appendChild(el("span", "created " + day(s.created_at) +
          (s.expires_at ? " · expires " + day(s.expires_at) : " · no expiry"), "muted"));
        if (s.revoked_at) {
          item.appendChild(el("span", "ended", "tag"));
        } else {
          var end = el("button", "End link", "button small");
          end.type = "button";
          end.addEventListener("click", function () {
            call("DELETE", "/shares/" + s.id).then(loadShares);
          });
          item.appendChild(end);
        }
        list.appendChild(item);
      });
    }).catch(function () {});
  }

  document.getElementById("share-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = {};
    var days = document.getElementById("share-days").value;
    if (days) body.expires_in_days = parseInt(days, 10);
    call("POST", "/shares", body).then(function (data) {
      var link = document.getElementById("share-url");
      link.textContent = data.url;
      link.href = data.url;
      document.getElementById("share-new").hidden = false;
      loadShares();
    }).catch(function () {});
  });

  // --- team -------------------------------------------------------------------------
  function loadTeam() {
    call("GET", "/team").then(function (data) {
      var list = document.getElementById("owner-list");
      list.textContent = "";
      var alone = data.owners.length < 2;
      data.owners.forEach(function (o) {
        var item = el("li", undefined, "item");
        item.appendChild(el("strong", o.email + (o.you ? " (you)" : "")));
        if (!(o.you && alone)) {
          var remove = el("button", o.you ? "Leave" : "Remove", "button small");
          remove.type = "button";
          remove.addEventListener("click", function () {
            call("DELETE", "/owners/" + o.id).then(function () {
              if (o.you) location.assign("/dashboard"); else loadTeam();
            });
          });
          item.appendChild(remove);
        }
        list.appendChild(item);
      });
    }).catch(function () {});
  }

  document.getElementById("invite-create").addEventListener("click", function () {
    call("POST", "/invites", {}).then(function (data) {
      document.getElementById("invite-url").textContent = data.url;
      document.getElementById("invite-new").hidden = false;
      loadTeam();
    }).catch(function () {});
  });

  loadHealth();
  setInterval(loadHealth, 60000);
  loadTokens();
  loadShares();
  loadTeam();
})();
