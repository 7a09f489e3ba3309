// Progressive enhancement of the code pages: live status, countdown, no reloads while waiting.
// Without JavaScript the pages still work (a refresh every 5 s while waiting for the device).
(function () {
  "use strict";
  var flow = document.getElementById("flow");
  if (!flow) { return; }
  var expires = Date.parse(flow.dataset.expires);
  var countdown = document.getElementById("flow-countdown");
  function tick() {
    if (!countdown) { return; }
    var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    countdown.textContent = Math.floor(left / 60) + " min " + ("0" + (left % 60)).slice(-2) + " s";
  }
  tick();
  setInterval(tick, 1000);
  var status = flow.dataset.status;
  if (status !== "awaiting_device_signal" && status !== "pending") { return; }
  function poll() {
    fetch(flow.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { return; }
        if (s.status !== status) { window.location.reload(); return; }
        document.getElementById("flow-hint").textContent = s.hint;
        var attempts = document.getElementById("flow-attempts");
        if (attempts) { attempts.textContent = s.attempts_left; }
        expires = Date.parse(s.expires_at);
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  setInterval(poll, 2000);
})();
