/* The fleet page: one row per device, kept current by live events; a device never seen before gets its row
   from its first event (and its details from the API); a reconnect resynchronises every row from the API. */
(function () {
  "use strict";

  const table = document.getElementById("fleet");
  const body = table.tBodies[0];
  const deviceUrl = table.dataset.deviceUrl;
  const nameFilter = document.getElementById("filter-name");
  const stateFilter = document.getElementById("filter-state");
  const empty = document.getElementById("fleet-empty");
  const rows = new Map();

  body.querySelectorAll("tr[data-device]").forEach(function (row) { rows.set(row.dataset.device, row); });

  function matches(row) {
    const text = nameFilter.value.trim().toLowerCase();
    const state = stateFilter.value;
    const label = (row.querySelector('[data-field="name"]').textContent + " " + row.dataset.device).toLowerCase();
    if (text && label.indexOf(text) === -1) { return false; }
    if (state === "online" && row.dataset.online !== "true") { return false; }
    if (state === "offline" && row.dataset.online === "true") { return false; }
    return true;
  }

  function refresh() {
    let online = 0;
    let shown = 0;
    rows.forEach(function (row) {
      if (row.dataset.online === "true") { online += 1; }
      row.hidden = !matches(row);
      if (!row.hidden) { shown += 1; }
    });
    document.querySelector('[data-count="online"]').textContent = online;
    document.querySelector('[data-count="offline"]').textContent = rows.size - online;
    document.querySelector('[data-count="total"]').textContent = rows.size;
    empty.hidden = shown > 0;
  }

  /* Rows stay sorted by username, as the server renders them. */
  function insertSorted(row) {
    const username = row.dataset.device;
    const after = Array.from(rows.keys()).filter(function (other) { return other > username; }).sort()[0];
    body.insertBefore(row, after === undefined ? null : rows.get(after));
    rows.set(username, row);
  }

  function newRow(username) {
    const row = Fleet.fromTemplate("device-row");
    row.dataset.device = username;
    row.querySelector('[data-field="link"]').href = deviceUrl + encodeURIComponent(username) + "/";
    row.querySelector('[data-field="name"]').textContent = username;
    row.querySelector('[data-field="username"]').textContent = username;
    insertSorted(row);
    return row;
  }

  async function fillFromApi(username) {
    try {
      const device = await Fleet.getJSON("/api/devices/" + encodeURIComponent(username) + "/");
      const row = rows.get(username);
      if (row) { Fleet.applyDevice(row, device); refresh(); }
    } catch (error) {
      console.warn("could not load device " + username + ":", error);  // the live events still fill the row
    }
  }

  function handle(event) {
    if (typeof event.device !== "string" || event.type.indexOf("device.") !== 0) { return; }
    let row = rows.get(event.device);
    const isNew = !row;
    if (isNew) { row = newRow(event.device); }
    Fleet.applyEvent(row, event);
    refresh();
    if (isNew) { fillFromApi(event.device); }
  }

  async function resync() {
    const devices = await Fleet.getAll("/api/devices/");
    const current = new Set();
    devices.forEach(function (device) {
      current.add(device.username);
      Fleet.applyDevice(rows.get(device.username) || newRow(device.username), device);
    });
    rows.forEach(function (row, username) {
      if (!current.has(username)) { row.remove(); rows.delete(username); }
    });
    refresh();
  }

  nameFilter.addEventListener("input", refresh);
  stateFilter.addEventListener("change", refresh);
  refresh();
  Fleet.connect({ event: handle, resync: resync });
})();
