/* The device page: state and latest values, recent messages of each kind, a chart of one numeric field,
   presence history and commands, all kept current by live events and resynchronised from the API after a
   reconnect. The command form posts to the API. */
(function () {
  "use strict";

  const MESSAGES_SHOWN = 20;
  const PRESENCE_SHOWN = 50;
  const CHART_POINTS = 500;
  const CHART_HEIGHT = 220;

  const root = document.getElementById("device");
  const username = root.dataset.device;
  const api = "/api/devices/" + encodeURIComponent(username) + "/";

  /* --- Recent messages ------------------------------------------------------------------------------- */

  function messageItem(message) {
    const item = document.createElement("li");
    const time = document.createElement("time");
    time.setAttribute("datetime", message.received_at || "");
    time.textContent = Fleet.clockTime(message.received_at);
    const text = document.createElement("span");
    text.textContent = Fleet.summary(message.payload);
    item.append(time, " ", text);
    return item;
  }

  function messageList(kind) {
    return document.querySelector('[data-messages="' + CSS.escape(kind) + '"]');
  }

  function addMessage(message) {
    const list = messageList(message.kind);
    if (!list) { return; }
    list.prepend(messageItem(message));
    while (list.children.length > MESSAGES_SHOWN) { list.lastElementChild.remove(); }
  }

  /* newest first, as the server and the history API give them */
  function showMessages(messages) {
    const list = messageList(messages.length ? messages[0].kind : "");
    if (!list) { return; }
    list.replaceChildren.apply(list, messages.slice(0, MESSAGES_SHOWN).map(messageItem));
  }

  /* --- Chart: every numeric field seen becomes a choice "<kind>.<field>" -------------------------------- */

  const fieldSelect = document.getElementById("chart-field");
  const chartBox = document.getElementById("chart");
  const chartEmpty = document.getElementById("chart-empty");
  const series = new Map();  // "<kind>.<field>" -> {x: [unix seconds], y: [values]}
  let chart = null;

  function addPoint(kind, payload, iso) {
    if (!payload || typeof payload !== "object" || !iso) { return; }
    const at = Date.parse(iso) / 1000;
    let added = false;
    Object.keys(payload).forEach(function (key) {
      const value = payload[key];
      if (typeof value !== "number" || !isFinite(value)) { return; }
      const name = kind + "." + key;
      let points = series.get(name);
      if (!points) {
        points = { x: [], y: [] };
        series.set(name, points);
        const option = document.createElement("option");
        option.value = option.textContent = name;
        fieldSelect.append(option);
      }
      if (points.x.length && at <= points.x[points.x.length - 1]) { return; }  // already there (resync)
      points.x.push(at);
      points.y.push(value);
      if (points.x.length > CHART_POINTS) { points.x.shift(); points.y.shift(); }
      added = added || name === fieldSelect.value;
    });
    if (!chart && fieldSelect.value) { draw(); } else if (added) { chart.setData(data()); }
  }

  function data() {
    const points = series.get(fieldSelect.value) || { x: [], y: [] };
    return [points.x, points.y];
  }

  function draw() {
    if (chart) { chart.destroy(); chart = null; }
    chartEmpty.hidden = Boolean(fieldSelect.value);
    if (!fieldSelect.value) { return; }
    chart = new uPlot({
      width: chartBox.clientWidth,
      height: CHART_HEIGHT,
      scales: { x: { time: true } },
      legend: { show: false },
      series: [{}, { label: fieldSelect.value, stroke: "#1f6feb", width: 2, points: { show: false } }],
    }, data(), chartBox);
  }

  fieldSelect.addEventListener("change", draw);
  window.addEventListener("resize", function () {
    if (chart) { chart.setSize({ width: chartBox.clientWidth, height: CHART_HEIGHT }); }
  });

  /* --- Presence history ------------------------------------------------------------------------------ */

  const presenceList = document.getElementById("presence");
  const presenceEmpty = document.getElementById("presence-empty");

  function presenceItem(event) {
    const item = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.online = event.online ? "true" : "false";
    badge.textContent = event.online ? "online" : "offline";
    const time = document.createElement("time");
    time.setAttribute("datetime", event.at || "");
    time.textContent = event.at ? new Date(event.at).toLocaleString() : "";
    const why = [event.reason, event.source && "(" + event.source + ")"].filter(Boolean).join(" ");
    item.append(badge, " ", time, " ", why);
    return item;
  }

  function showPresence(events) {
    presenceList.replaceChildren.apply(presenceList, events.slice(0, PRESENCE_SHOWN).map(presenceItem));
    presenceEmpty.hidden = events.length > 0;
  }

  function addPresence(event) {
    presenceList.prepend(presenceItem(event));
    while (presenceList.children.length > PRESENCE_SHOWN) { presenceList.lastElementChild.remove(); }
    presenceEmpty.hidden = true;
  }

  /* --- Commands ------------------------------------------------------------------------------------- */

  const commandBody = document.getElementById("commands").tBodies[0];

  function showCommand(command) {
    let row = commandBody.querySelector('tr[data-command="' + CSS.escape(command.id) + '"]');
    if (!row) {
      row = Fleet.fromTemplate("command-row");
      row.dataset.command = command.id;
      commandBody.prepend(row);
    }
    row.querySelector('[data-field="name"]').textContent = command.name;
    row.querySelector('[data-field="params"]').textContent = Fleet.summary(command.params);
    const state = row.querySelector('[data-field="state"]');
    state.dataset.state = command.state;
    state.textContent = command.state;
    const queued = row.querySelector('[data-field="queued"]');
    queued.setAttribute("datetime", command.queued_at || "");
    queued.textContent = Fleet.clockTime(command.queued_at);
    const outcome = command.error || (command.result === null || command.result === undefined
      ? "" : Fleet.summary(command.result));
    row.querySelector('[data-field="outcome"]').textContent = outcome;
  }

  commandBody.querySelectorAll('time[data-field="queued"]').forEach(function (time) {
    time.textContent = Fleet.clockTime(time.getAttribute("datetime"));
  });

  const form = document.getElementById("command-form");
  const formError = document.getElementById("command-error");

  function fail(text) {
    formError.textContent = text;
    formError.hidden = false;
  }

  /* DRF answers {"field": ["message", ...], ...} or {"detail": "..."}: one readable line. */
  function describe(content, status) {
    if (!content || typeof content !== "object") { return "The server answered HTTP " + status + "."; }
    return Object.keys(content).map(function (key) {
      const value = Array.isArray(content[key]) ? content[key].join(" ") : String(content[key]);
      return key === "detail" || key === "non_field_errors" ? value : key + ": " + value;
    }).join("; ");
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    formError.hidden = true;
    let params;
    try {
      params = JSON.parse(form.elements.params.value || "{}");
    } catch (error) {
      fail("Parameters must be JSON: " + error.message);
      return;
    }
    if (!params || typeof params !== "object" || Array.isArray(params)) {
      fail("Parameters must be a JSON object, such as {\"delay\": 5}.");
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const answer = await Fleet.postJSON(form.dataset.url, {
        name: form.elements.name.value.trim(),
        params: params,
        timeout: Number(form.elements.timeout.value),
      });
      if (answer.ok && answer.content) { showCommand(answer.content); } else { fail(describe(answer.content, answer.status)); }
    } catch (error) {
      fail("The command could not be sent: " + error.message);
    } finally {
      button.disabled = false;
    }
  });

  /* --- Live events and resync --------------------------------------------------------------------- */

  function handle(event) {
    if (event.device !== username) { return; }
    if (event.type === "command.state") {
      showCommand(event.command);
      return;
    }
    if (event.type.indexOf("device.") !== 0) { return; }
    Fleet.applyEvent(root, event);
    if (event.type === "device.presence") {
      addPresence(event);
    } else {
      const kind = event.type.slice("device.".length);
      addMessage({ kind: kind, payload: event.data, received_at: event.received_at });
      addPoint(kind, event.data, event.received_at);
    }
  }

  async function resync() {
    const [device, presence, commands, history] = await Promise.all([
      Fleet.getJSON(api),
      Fleet.getJSON(api + "presence/"),
      Fleet.getJSON(api + "commands/"),
      Fleet.getJSON(api + "history/"),
    ]);
    Fleet.applyDevice(root, device);
    showPresence(presence.results);
    commands.results.slice().reverse().forEach(showCommand);
    const byKind = new Map();
    history.results.forEach(function (message) {
      if (!byKind.has(message.kind)) { byKind.set(message.kind, []); }
      byKind.get(message.kind).push(message);
    });
    byKind.forEach(showMessages);
    history.results.slice().reverse().forEach(function (message) {
      addPoint(message.kind, message.payload, message.received_at);
    });
  }

  const initial = Fleet.data("initial-messages");
  Object.keys(initial).forEach(function (kind) { showMessages(initial[kind]); });
  Fleet.data("chart-points").forEach(function (message) {
    addPoint(message.kind, message.payload, message.received_at);
  });
  Object.keys(initial).forEach(function (kind) {
    const newest = initial[kind][0];
    if (newest) { addPoint(kind, newest.payload, newest.received_at); }
  });
  draw();
  showPresence(Fleet.data("initial-presence"));
  Fleet.connect({ event: handle, resync: resync });
})();
