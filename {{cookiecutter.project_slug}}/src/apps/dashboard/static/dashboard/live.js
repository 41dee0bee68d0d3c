/* What the fleet and device pages share: the live socket (reconnecting with backoff), "12 s ago" clocks,
   the API calls, and how a device's state and values are written into the page. Plain browser JavaScript,
   served as is: no build step. */
(function () {
  "use strict";

  const FIRST_RETRY_MS = 500;
  const MAX_RETRY_MS = 15000;

  /* `{"battery": 87.5, "rssi": -61}` -> `battery 87.5 · rssi -61`; the server's `summary` filter writes the
     same text, so a value looks alike before and after a live update. */
  function scalar(value) {
    if (value === null || value === undefined) { return "null"; }
    if (typeof value === "object") { return JSON.stringify(value); }
    return String(value);
  }

  function summary(data) {
    if (data && typeof data === "object" && !Array.isArray(data)) {
      return Object.keys(data).map(function (key) { return key + " " + scalar(data[key]); }).join(" · ");
    }
    return data === null || data === undefined ? "" : scalar(data);
  }

  function ago(iso) {
    if (!iso) { return "never"; }
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) { return seconds + " s ago"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + " min ago"; }
    if (seconds < 86400) { return Math.floor(seconds / 3600) + " h ago"; }
    return Math.floor(seconds / 86400) + " d ago";
  }

  function clockTime(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "";
  }

  /* Every "last seen" in the page counts up once a second; the full date stays in the tooltip. */
  function tick() {
    document.querySelectorAll('time[data-field="last-seen"]').forEach(function (element) {
      const iso = element.getAttribute("datetime");
      element.textContent = ago(iso);
      element.title = iso ? new Date(iso).toLocaleString() : "";
    });
  }

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  function setOnline(root, online) {
    const value = online ? "true" : "false";
    root.dataset.online = value;
    const badge = field(root, "state");
    badge.dataset.online = value;
    badge.textContent = online ? "online" : "offline";
  }

  function setLastSeen(root, iso) {
    const element = field(root, "last-seen");
    if (!iso) { return; }
    const current = element.getAttribute("datetime");
    if (current && Date.parse(current) >= Date.parse(iso)) { return; }  // never move backwards
    element.setAttribute("datetime", iso);
    element.textContent = ago(iso);
  }

  function setValue(root, kind, data) {
    const cell = root.querySelector('[data-kind="' + CSS.escape(kind) + '"]');
    if (cell) { cell.textContent = summary(data); }
  }

  /* A device as the API renders it (GET /api/devices/<username>/). */
  function applyDevice(root, device) {
    field(root, "name").textContent = device.name || device.username;
    field(root, "username").textContent = device.username;
    setOnline(root, device.is_online);
    setLastSeen(root, device.last_seen_at);
    Object.keys(device.latest || {}).forEach(function (kind) {
      setValue(root, kind, device.latest[kind].data);
    });
  }

  /* A live event about this device: device.presence or device.<kind>. */
  function applyEvent(root, event) {
    if (event.type === "device.presence") {
      setOnline(root, event.online);
      setLastSeen(root, event.last_seen_at);
    } else {
      setValue(root, event.type.slice("device.".length), event.data);
      setLastSeen(root, event.received_at);
    }
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) { throw new Error("GET " + url + ": HTTP " + response.status); }
    return response.json();
  }

  /* Every result of a paginated API list, page after page. */
  async function getAll(url) {
    const results = [];
    let next = url;
    while (next) {
      const page = await getJSON(next);
      results.push.apply(results, page.results);
      next = page.next;
    }
    return results;
  }

  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    let content = null;
    try { content = await response.json(); } catch (error) { content = null; }
    return { ok: response.ok, status: response.status, content: content };
  }

  function fromTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  function showState(state, text) {
    const element = document.getElementById("live-state");
    if (element) {
      element.dataset.state = state;
      element.textContent = text;
    }
  }

  /* The socket of /ws/connect/. After a drop (a server restart, a network change) it reconnects with growing
     pauses; each reconnect calls `resync`, since events sent while it was away are lost. */
  function connect(handlers) {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const url = scheme + "://" + window.location.host + "/ws/connect/";
    let delay = FIRST_RETRY_MS;
    let opened = false;

    function open() {
      const socket = new WebSocket(url);
      socket.onopen = function () {
        delay = FIRST_RETRY_MS;
        showState("live", "live");
        if (opened && handlers.resync) {
          Promise.resolve(handlers.resync()).catch(function (error) {
            showState("stale", "live (refresh failed)");
            console.warn("resync failed:", error);
          });
        }
        opened = true;
      };
      socket.onmessage = function (message) {
        let event;
        try { event = JSON.parse(message.data); } catch (error) { return; }
        if (event && typeof event.type === "string") { handlers.event(event); }
      };
      socket.onclose = function (event) {
        if (event.code === 4401) {  // signed out meanwhile: the login page says what to do
          showState("closed", "signed out");
          window.location.reload();
          return;
        }
        const wait = delay + Math.random() * delay / 2;  // jitter: a restarted server is not hit all at once
        showState("reconnecting", "reconnecting in " + Math.ceil(wait / 1000) + " s");
        setTimeout(open, wait);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      };
    }
    open();
  }

  window.Fleet = {
    summary: summary,
    clockTime: clockTime,
    applyDevice: applyDevice,
    applyEvent: applyEvent,
    setOnline: setOnline,
    getJSON: getJSON,
    getAll: getAll,
    postJSON: postJSON,
    fromTemplate: fromTemplate,
    connect: connect,
    data: function (id) { return JSON.parse(document.getElementById(id).textContent); },
  };

  tick();
  setInterval(tick, 1000);
})();
