/* A shared dashboard: the tenant's live numbers over the websocket, with the link's token as
   the credentials. Values are set with textContent. A close with 4401/4403 means the link was
   revoked or expired: the page says so and stops. */
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.dataset.live) return;
  var statusBox = document.getElementById("status");
  var statusText = document.getElementById("status-text");
  var attempt = 0, ended = false;

  function setStatus(state, text) {
    statusBox.dataset.state = state;
    statusText.textContent = text;
  }

  function show(data) {
    document.querySelectorAll("[data-stat]").forEach(function (el) {
      var value = data[el.dataset.stat];
      if (typeof value === "number") el.textContent = value.toLocaleString();
    });
  }

  function end() {
    ended = true;
    setStatus("offline", "Ended");
    document.getElementById("ended").hidden = false;
    document.querySelectorAll("[data-stat]").forEach(function (el) { el.textContent = "–"; });
  }

  function connect() {
    if (ended) return;
    setStatus("connecting", "Connecting…");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + main.dataset.live);
    var opened = false;
    socket.onopen = function () { opened = true; };
    socket.onmessage = function (message) {
      var msg;
      try { msg = JSON.parse(message.data); } catch (e) { return; }
      if (msg && (msg.type === "snapshot" || msg.type === "update") && msg.data) {
        attempt = 0;
        setStatus("live", "Live");
        show(msg.data);
      }
    };
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4403) return end();
      // A refused handshake (the link ended while we were away) closes before opening;
      // after a few of those in a row, stop.
      if (!opened && attempt >= 3) return end();
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      setStatus("reconnecting", "Reconnecting…");
      setTimeout(connect, delay);
    };
  }

  connect();
})();
