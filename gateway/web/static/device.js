// The device page: the recent track on a Leaflet map (served from /static/vendor, no CDN) and
// live updates (Server-Sent Events from /api/v1/devices/<imei>/live) that move it.
// Without tiles (no internet, or web.tile_url empty) the track, its points, the last position
// and the scale still draw on a plain background.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) { return; }

  var ACCENT = "#1f6feb", LAST = "#b42318", ALARM = "#7a0916";
  var MAX_ROWS = 200, MAX_ALARMS = 5;

  var status = document.getElementById("live-status");
  var note = document.getElementById("map-note");
  var tbody = document.querySelector("#positions tbody");
  var map = L.map(el, { worldCopyJump: true });

  var tileUrl = el.dataset.tileUrl;
  if (tileUrl) {
    var tiles = L.tileLayer(tileUrl, {
      maxZoom: Number(el.dataset.maxZoom) || 19,
      attribution: el.dataset.tileAttribution || "",
      // The pages send no Referer (claim links carry keys), but tile servers such as
      // OpenStreetMap's want one: tiles get this site's origin, never the page's path.
      referrerPolicy: "strict-origin-when-cross-origin"
    }).addTo(map);
    tiles.on("tileerror", function () {
      el.classList.add("no-tiles");
      if (note) { note.hidden = false; }
    });
    tiles.on("tileload", function () {
      el.classList.remove("no-tiles");
      if (note) { note.hidden = true; }
    });
  } else {
    el.classList.add("no-tiles");
  }
  L.control.scale({ maxWidth: 160 }).addTo(map);

  // Points by fix time (ms): the table, the page's data and live events may repeat one.
  var points = [];
  var seen = {};
  var line = L.polyline([], {
    color: ACCENT, weight: 3, opacity: 0.85, interactive: false, className: "track-line"
  })
    .addTo(map);
  var dots = L.layerGroup().addTo(map);
  var lastMarker = null;

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function utc(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  function describe(p) {
    var text = utc(p.t) + " UTC";
    if (p.speed !== null && p.speed !== undefined) { text += " · " + p.speed.toFixed(1) + " km/h"; }
    return text;
  }

  function addPoint(raw) {
    var t = Date.parse(raw.fix_time);
    if (isNaN(t) || seen[t] || typeof raw.lat !== "number" || typeof raw.lon !== "number") {
      return null;
    }
    seen[t] = true;
    var p = { t: t, lat: raw.lat, lon: raw.lon, speed: raw.speed_kmh, valid: raw.valid !== false };
    points.push(p);
    if (p.valid) {
      var dot = L.circleMarker([p.lat, p.lon], {
        radius: 4, color: ACCENT, weight: 2, fillColor: "#fff", fillOpacity: 1,
        className: "track-point"
      }).bindTooltip(describe(p), { direction: "top", offset: [0, -4] });
      dot.on("click", function () { dot.openTooltip(); });
      dots.addLayer(dot);
    }
    return p;
  }

  function redraw() {
    points.sort(function (a, b) { return a.t - b.t; });
    var drawn = points.filter(function (p) { return p.valid; });
    line.setLatLngs(drawn.map(function (p) { return [p.lat, p.lon]; }));
    var last = drawn[drawn.length - 1];
    if (!last) { return null; }
    if (lastMarker) { map.removeLayer(lastMarker); }
    lastMarker = L.circleMarker([last.lat, last.lon], {
      radius: 8, color: "#fff", weight: 2, fillColor: LAST, fillOpacity: 1,
      className: "track-last"
    }).bindTooltip("Last position: " + describe(last), { direction: "top", offset: [0, -8] })
      .addTo(map);
    lastMarker.on("click", function () { lastMarker.openTooltip(); });
    return last;
  }

  function addRow(p) {
    if (!tbody) { return; }
    var row = document.createElement("tr");
    var cells = [utc(p.t), p.lat.toFixed(5), p.lon.toFixed(5),
      p.speed === null || p.speed === undefined ? "–" : p.speed.toFixed(1), p.valid ? "yes" : "no"];
    cells.forEach(function (text) {
      var cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    row.className = "fresh";
    // The table is newest first; a late fix from a device's buffer goes below newer ones.
    var before = null;
    for (var i = 0; i < tbody.rows.length; i++) {
      if ((tbody.rows[i].dataset.t ? Number(tbody.rows[i].dataset.t) :
        Date.parse(tbody.rows[i].cells[0].textContent.replace(" ", "T") + "Z")) < p.t) {
        before = tbody.rows[i];
        break;
      }
    }
    row.dataset.t = String(p.t);
    tbody.insertBefore(row, before);
    while (tbody.rows.length > MAX_ROWS) { tbody.deleteRow(tbody.rows.length - 1); }
    document.getElementById("positions").hidden = false;
    var none = document.getElementById("no-positions");
    if (none) { none.hidden = true; }
  }

  // The page's own positions.
  var initial = JSON.parse(document.getElementById("track-data").textContent || "[]");
  initial.forEach(addPoint);
  var newest = redraw();
  var drawn = points.filter(function (p) { return p.valid; });
  // False while the map shows the whole world (no position yet): the first one zooms in.
  var placed = true;
  if (drawn.length > 1) {
    map.fitBounds(line.getBounds(), { padding: [24, 24], maxZoom: 16 });
  } else if (newest) {
    map.setView([newest.lat, newest.lon], 16);
  } else {
    map.setView([20, 0], 2);
    placed = false;
  }

  function follow(lat, lon) {
    var here = L.latLng(lat, lon);
    if (!placed) {
      map.setView(here, 16);
      placed = true;
    } else if (!map.getBounds().pad(-0.1).contains(here)) {
      map.panTo(here);
    }
  }

  function newPositions(list) {
    var added = [];
    list.forEach(function (raw) {
      var p = addPoint(raw);
      if (p) { added.push(p); addRow(p); }
    });
    if (!added.length) { return; }
    var last = redraw();
    if (last && added.indexOf(last) >= 0) { follow(last.lat, last.lon); }
  }

  // Alarms as they are committed.
  var alarmsBox = document.getElementById("live-alarms");
  var alarmLayer = L.layerGroup().addTo(map);
  function alarmName(kind) {
    if (kind === "sos") { return "SOS"; }
    var words = String(kind || "alarm").replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }
  // The page's table of alarms gets the new one on top (as a reload would show it). Alarms
  // are known by type and second: the page's own, live events and catch-ups may repeat one.
  var alarmsTable = document.getElementById("alarms-table");
  var seenAlarms = {};
  var newestAlarm = 0;
  function alarmClass(kind) {
    return "alarm alarm-" + String(kind || "other").replace(/[^a-z_]/g, "");
  }
  function alarmKey(kind, t) { return String(kind) + "@" + Math.floor(t / 1000); }
  if (alarmsTable) {
    Array.prototype.forEach.call(alarmsTable.querySelectorAll("tr[data-key]"), function (row) {
      seenAlarms[row.dataset.key] = true;
      var t = Number(row.dataset.key.split("@")[1]) * 1000;
      if (t > newestAlarm) { newestAlarm = t; }
    });
  }
  function addAlarmRow(body, t, where) {
    var rows = alarmsTable && alarmsTable.tBodies[0];
    if (!rows) { return; }
    var row = document.createElement("tr");
    row.className = alarmClass(body.alarm) + " fresh";
    [isNaN(t) ? "?" : utc(t), body.alarm === "sos" ? "SOS" : String(body.alarm || "alarm").replace(/_/g, " "),
      where ? where.lat.toFixed(5) + ", " + where.lon.toFixed(5) : "–"].forEach(function (text) {
      var cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    rows.insertBefore(row, rows.firstChild);
    alarmsTable.hidden = false;
    var none = document.getElementById("no-alarms");
    if (none) { none.hidden = true; }
  }
  function onAlarm(body) {
    var t = Date.parse(body.event_time || body.received_at);
    if (!isNaN(t)) {
      var key = alarmKey(body.alarm, t);
      if (seenAlarms[key]) { return; }
      seenAlarms[key] = true;
      if (t > newestAlarm) { newestAlarm = t; }
    }
    var where = body.position && body.position.valid !== false ? body.position : null;
    var text = alarmName(body.alarm) + " alarm at " + (isNaN(t) ? "?" : utc(t)) + " UTC";
    if (where) { text += " near " + where.lat.toFixed(5) + ", " + where.lon.toFixed(5); }
    if (alarmsBox) {
      var item = document.createElement("p");
      item.className = alarmClass(body.alarm);
      item.textContent = text;
      alarmsBox.insertBefore(item, alarmsBox.firstChild);
      while (alarmsBox.children.length > MAX_ALARMS) { alarmsBox.removeChild(alarmsBox.lastChild); }
    }
    addAlarmRow(body, t, where);
    if (where) {
      L.circleMarker([where.lat, where.lon], {
        radius: 11, color: ALARM, weight: 3, fillColor: LAST, fillOpacity: 0.35,
        className: "alarm-marker"
      }).bindTooltip(text, { direction: "top" }).addTo(alarmLayer);
      newPositions([where]);
      follow(where.lat, where.lon);
    }
  }

  // Live updates.
  var liveUrl = el.dataset.liveUrl;
  var positionsUrl = el.dataset.positionsUrl;
  if (!liveUrl || !window.EventSource) {
    if (liveUrl && status) { status.textContent = "No live updates in this browser: reload for new positions."; }
    return;
  }
  var stream = null;
  var retryMs = 3000;
  var loadedAt = Date.now();

  function setStatus(state, text) {
    if (!status) { return; }
    status.dataset.state = state;
    status.textContent = text;
  }

  function lastFixTime() {
    var t = 0;
    points.forEach(function (p) { if (p.t > t) { t = p.t; } });
    return t;
  }

  // What was committed while the stream was not there (before it was ready, or after a gap).
  var alarmsUrl = el.dataset.alarmsUrl;
  function catchUpAlarms() {
    if (!alarmsUrl) { return; }
    var since = newestAlarm || loadedAt - 60000;
    fetch(alarmsUrl + "?limit=100&since=" + encodeURIComponent(new Date(since).toISOString()),
      { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        body.alarms.slice().reverse().forEach(function (a) {  // oldest first: newest on top
          onAlarm({ alarm: a.alarm_type, event_time: a.event_time, received_at: a.received_at,
            position: a.lat === null || a.lon === null ? null : { lat: a.lat, lon: a.lon } });
        });
      })
      .catch(function () { /* offline for a moment: the next reconnect catches up */ });
  }
  function catchUp() {
    catchUpAlarms();
    var since = lastFixTime() || loadedAt - 60000;
    fetch(positionsUrl + "?limit=1000&since=" + encodeURIComponent(new Date(since).toISOString()),
      { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body) { newPositions(body.positions); } })
      .catch(function () { /* offline for a moment: the next reconnect catches up */ });
  }

  function connect() {
    setStatus("connecting", "Connecting to live updates…");
    stream = new EventSource(liveUrl);
    stream.addEventListener("ready", function () {
      retryMs = 3000;
      setStatus("live", "Live: new positions and alarms appear as they arrive.");
      catchUp();
    });
    stream.addEventListener("position", function (e) {
      var body = JSON.parse(e.data);
      newPositions([body]);
      var seenAt = document.getElementById("last-seen");
      var t = Date.parse(body.received_at);
      if (seenAt && !isNaN(t)) { seenAt.textContent = utc(t); }
    });
    stream.addEventListener("alarm", function (e) { onAlarm(JSON.parse(e.data)); });
    stream.addEventListener("reload", function () { catchUp(); });
    stream.addEventListener("ended", function (e) {
      stream.close();
      var reason = "";
      try { reason = JSON.parse(e.data).reason; } catch (err) { reason = ""; }
      setStatus("ended", "Live updates ended" + (reason ? ": " + reason : "") + ".");
    });
    stream.onerror = function () {
      if (stream.readyState === EventSource.CLOSED) {
        // Refused (the gateway restarting, too many streams, signed out): try again later.
        setStatus("paused", "Live updates paused: trying again in " +
          Math.round(retryMs / 1000) + " s.");
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 60000);
      } else {
        setStatus("paused", "Live updates interrupted: reconnecting…");
      }
    };
  }
  connect();
})();
