// The device page's command list, kept up to date while the page is open (the statuses move
// from queued to sent to acknowledged as the tracker takes and answers them).
(function () {
  "use strict";
  var section = document.getElementById("commands");
  var table = document.getElementById("command-list");
  if (!section || !table) { return; }
  var names = {position_single: "position request", report_interval: "report interval",
               reboot: "reboot", engine_stop: "engine stop", engine_resume: "engine resume"};
  function time(iso) {
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }
  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }
  function render(commands) {
    var body = document.createElement("tbody");
    commands.forEach(function (c) {
      var row = document.createElement("tr");
      row.dataset.id = c.id;
      cell(row, time(c.created_at));
      var name = names[c.type] || c.type;
      if (c.params && c.params.interval_s !== undefined) { name += " (" + c.params.interval_s + " s)"; }
      cell(row, name);
      var status = document.createElement("span");
      status.className = "command-status command-" + c.status;
      status.textContent = c.status;
      cell(row, "").appendChild(status);
      cell(row, c.result || "");
      body.appendChild(row);
    });
    table.replaceChild(body, table.tBodies[0]);
    table.hidden = commands.length === 0;
    var empty = document.getElementById("no-commands");
    if (empty) { empty.hidden = commands.length !== 0; }
  }
  function poll() {
    fetch(section.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { render(data.commands); } })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  setInterval(poll, 2000);
})();
