// mtad dashboard: statistics, graphs (uPlot), the queue, message detail and actions.
// Every text that came from the server is put in the page with textContent or as
// an attribute value set through the DOM: addresses, subjects and replies are
// attacker-controlled, and nothing here ever parses them as markup.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const STATS_MS = 2000, HISTORY_MS = 10000, QUEUE_MS = 5000;

  // ---- small helpers ------------------------------------------------------
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = v;
        else if (k === "dataset") Object.assign(e.dataset, v);
        else e.setAttribute(k, v);
      }
    }
    for (const k of kids) {
      if (k == null) continue;
      e.append(typeof k === "string" ? document.createTextNode(k) : k);
    }
    return e;
  }
  const nf = new Intl.NumberFormat();
  const cf = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
  const fmtNum = (n) => (n == null ? "–" : nf.format(n));
  function fmtBytes(b) {
    if (b == null) return "–";
    const u = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b : b.toFixed(b < 10 ? 1 : 0)) + " " + u[i];
  }
  function fmtAge(s) {
    if (s == null) return "–";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });
  const fmtTime = (t) => (t == null ? "–" : dtf.format(new Date(t * 1000)));
  const rate = (r) => (r == null ? "" : (r >= 10 ? nf.format(Math.round(r)) : r.toFixed(1)) + " / min");

  let toastTimer = 0;
  function toast(msg, bad) {
    const t = $("toast");
    t.textContent = msg;
    t.className = "toast" + (bad ? " bad" : "");
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 6000 : 3000);
  }

  // Same-origin requests; the browser adds the basic-auth credentials it holds.
  // State-changing ones carry X-Requested-With, which mtad requires (CSRF guard).
  // URLs are built on location.origin, never on the page's own URL: a page
  // opened as http://user:pass@host/ would give fetch() a URL with credentials,
  // which it refuses ("Request cannot be constructed from a URL that includes
  // credentials").
  const apiUrl = (path) => new URL(path, location.origin).href;
  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    const init = { method: opts.method || "GET", headers, credentials: "same-origin", cache: "no-store" };
    if (init.method !== "GET") {
      headers["X-Requested-With"] = "mtad-dashboard";
      if (opts.body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(opts.body);
      }
    }
    const r = await fetch(apiUrl(path), init);
    let j = null;
    try { j = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error((j && j.error) || r.status + " " + r.statusText);
    return j;
  }

  function setStatus(state, text) {
    const s = $("status");
    s.dataset.state = state;
    s.textContent = text;
  }

  // ---- statistics -----------------------------------------------------------
  function setCard(id, value, sub, subId) {
    $(id).textContent = value;
    if (subId) $(subId).textContent = sub || "";
  }

  function renderBanners(disk, ui) {
    const box = $("banners");
    box.replaceChildren();
    if (disk && disk.message) {
      // Below 1 % mtad refuses new mail (452 4.3.1): say so, not just the free space.
      const text = disk.level >= 2
        ? disk.message + ": new mail is being refused (452 4.3.1) until space is freed."
        : disk.message;
      box.append(el("div", { class: "banner " + (disk.level >= 2 ? "bad" : "warn"), role: "alert",
        id: "disk-banner", text }));
    }
    if (ui && ui.open) {
      box.append(el("div", { class: "banner bad", role: "alert", id: "open-ui-banner",
        text: "This web UI has no username and password and listens beyond this machine: " +
          "anyone who can reach this port can read and change the queue. " +
          "Set username and password (or ui_address = 127.0.0.1) in mtad.conf." }));
    }
  }

  async function refreshStats() {
    let s;
    try {
      s = await api("/api/stats");
    } catch (e) {
      setStatus("down", "offline – retrying");
      return;
    }
    setStatus("live", "live");
    $("hostname").textContent = s.hostname || "";
    document.title = "mtad – " + (s.hostname || "");
    $("uptime").textContent = "up " + fmtAge(s.uptime);
    const q = s.queue, t = s.totals, r = s.rates;
    setCard("c-queue", fmtNum(q.messages), fmtNum(q.deferred) + " deferred · " + fmtNum(q.held) + " held", "c-queue-sub");
    setCard("c-queue-kb", fmtNum(q.kilobytes) + " KB", q.messages ? "oldest " + fmtAge(q.oldest_age) : "", "c-oldest");
    setCard("c-sessions", fmtNum(s.sessions.active), fmtNum(s.sessions.total) + " total · " + fmtNum(s.sessions.tls_total) + " TLS" +
      (s.sessions.auth_total ? " · " + fmtNum(s.sessions.auth_active) + " logged in (AUTH)" : ""), "c-sessions-sub");
    setCard("c-accepted", fmtNum(t.accepted), rate(r.accepted_per_min), "c-accepted-rate");
    setCard("c-delivered", fmtNum(t.delivered), rate(r.delivered_per_min), "c-delivered-rate");
    setCard("c-deferred", fmtNum(t.deferred), rate(r.deferred_per_min), "c-deferred-rate");
    setCard("c-bounced", fmtNum(t.bounced), rate(r.bounced_per_min), "c-bounced-rate");
    setCard("c-rejected", fmtNum(t.rejected), rate(r.rejected_per_min), "c-rejected-rate");
    const d = s.disk;
    setCard("c-disk", d.free_percent == null ? "–" : d.free_percent.toFixed(1) + " %",
      d.total_bytes ? fmtBytes(d.free_bytes) + " of " + fmtBytes(d.total_bytes) : "", "c-disk-sub");
    const card = $("c-disk").parentElement;
    card.classList.toggle("warn", d.level === 1);
    card.classList.toggle("bad", d.level >= 2);
    renderBanners(d, s.ui);
  }

  // Throttled destinations: current/configured connections, rate, queued; the reply as a tooltip.
  async function refreshDests() {
    let r;
    try {
      r = await api("/api/destinations");
    } catch (e) {
      return;
    }
    const thr = r.destinations.filter((d) => d.throttled);
    setCard("c-dests", fmtNum(thr.length),
      thr.length ? "" : fmtNum(r.total) + " active, none throttled", "c-dests-sub");
    $("c-dests-list").replaceChildren(...thr.slice(0, 5).map((d) => el("li", {
      title: d.last_throttle_reply || "",
      text: d.destination + " " + d.concurrency_limit + "/" + d.concurrency_max +
        (d.rate_limit ? " · " + d.rate_limit : "") + " · " + fmtNum(d.queued) + " queued",
    })));
    $("c-dests").parentElement.classList.toggle("warn", thr.length > 0);
  }

  // ---- graphs ---------------------------------------------------------------
  let range = "1h";
  let xRange = null;
  const charts = {};
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim() || "#888";

  function chartSize(div) {
    const w = Math.max(240, Math.floor(div.getBoundingClientRect().width));
    return { width: w, height: 200 };
  }

  // Counts (sessions, messages) get whole-number ticks only.
  const INT_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2500, 5e3, 1e4,
    2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];

  function makeChart(id, series, data, integer) {
    const div = $(id);
    const axis = { stroke: color("--muted"), grid: { stroke: color("--line"), width: 1 }, ticks: { stroke: color("--line") } };
    const yaxis = Object.assign({ size: 56, values: (u, splits) => splits.map((v) => cf.format(v)) }, axis);
    if (integer) yaxis.incrs = INT_INCRS;
    const opts = Object.assign(chartSize(div), {
      cursor: { drag: { x: false, y: false } },
      // The x axis always spans the chosen range, however few samples there are yet.
      scales: { x: { time: true, range: (u, min, max) => xRange || [min, max] },
                y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.1)] } },
      axes: [Object.assign({}, axis), yaxis],
      series: [{}].concat(series.map((s) => ({
        label: s.label, stroke: s.color, width: 2, fill: s.fill || undefined,
        value: (u, v) => (v == null ? "–" : (Number.isInteger(v) ? fmtNum(v) : v.toFixed(1))),
      }))),
      legend: { live: true },
    });
    div.replaceChildren();
    const u = new uPlot(opts, data, div);
    div.__uplot = u;          // for the browser test: the axes' ticks
    return u;
  }

  function setChart(key, id, series, data, integer) {
    if (charts[key]) charts[key].setData(data);
    else charts[key] = makeChart(id, series, data, integer);
  }

  async function refreshHistory() {
    if (typeof uPlot === "undefined") return;
    let h;
    try { h = await api("/api/history?range=" + range); } catch (e) { return; }
    const per = 60 / h.interval;             // samples to per-minute rates
    xRange = [h.now - h.interval * h.capacity, h.now];
    // Just started: the first sample comes a second after start.
    if (h.t.length < 2) setTimeout(refreshHistory, 3000);
    const scale = (a) => a.map((v) => v * per);
    const t = h.t;
    setChart("tp", "chart-throughput", [
      { label: "Accepted", color: color("--c-accepted") },
      { label: "Delivered", color: color("--c-delivered") },
      { label: "Deferred", color: color("--c-deferred") },
      { label: "Bounced", color: color("--c-bounced") },
      { label: "Rejected", color: color("--c-rejected") },
    ], [t, scale(h.accepted), scale(h.delivered), scale(h.deferred), scale(h.bounced), scale(h.rejected)]);
    setChart("ss", "chart-sessions", [{ label: "Sessions", color: color("--accent"), fill: "rgba(47,111,222,.12)" }], [t, h.sessions], true);
    setChart("qq", "chart-queue", [{ label: "Messages", color: color("--c-deferred"), fill: "rgba(214,158,46,.12)" }], [t, h.queue], true);
  }

  function resizeCharts() {
    const ids = { tp: "chart-throughput", ss: "chart-sessions", qq: "chart-queue" };
    for (const [k, c] of Object.entries(charts)) c.setSize(chartSize($(ids[k])));
  }

  document.querySelectorAll(".seg button").forEach((b) => {
    b.addEventListener("click", () => {
      range = b.dataset.range;
      document.querySelectorAll(".seg button").forEach((x) => {
        x.classList.toggle("on", x === b);
        x.setAttribute("aria-pressed", String(x === b));
      });
      refreshHistory();
    });
  });

  // ---- the queue ------------------------------------------------------------
  const qstate = { q: "", domain: "", age: "", state: "", page: 1, per_page: 50 };
  let lastQueue = null;

  function filterParams() {
    const p = new URLSearchParams();
    if (qstate.q) p.set("q", qstate.q);
    if (qstate.domain) p.set("domain", qstate.domain);
    if (qstate.state) p.set("state", qstate.state);
    if (qstate.age) { const [k, v] = qstate.age.split("="); p.set(k, v); }
    return p;
  }
  const hasFilter = () => filterParams().toString() !== "";

  function stateCell(state) {
    return el("span", { class: "pill " + state, text: state });
  }

  function queueRow(m) {
    const rc = el("td", { class: "addr", "data-label": "Recipients" }, m.recipients.join(", "));
    if (m.nrcpt > m.recipients.length) rc.append(el("span", { class: "more", text: " +" + (m.nrcpt - m.recipients.length) + " more" }));
    rc.title = m.recipients.join(", ");
    const tr = el("tr", { tabindex: "0", "data-id": m.id },
      el("td", { "data-label": "Queue ID" }, el("code", { text: m.id })),
      el("td", { "data-label": "Arrived", title: fmtTime(m.arrival), text: fmtAge(m.age) + " ago" }),
      el("td", { class: "addr", "data-label": "Sender", title: m.sender || "<>", text: m.sender || "<>" }),
      rc,
      el("td", { class: "num", "data-label": "Size", text: fmtBytes(m.size) }),
      el("td", { "data-label": "State" }, stateCell(m.state)),
      el("td", { class: "num", "data-label": "Tries", text: String(m.attempts) }),
      el("td", { class: "reply", "data-label": "Last reply", title: m.last_reply || "", text: m.last_reply || "" }));
    tr.addEventListener("click", () => openDetail(m.id));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(m.id); });
    return tr;
  }

  // A search of a big queue passes over the index of parked messages: one at a time.
  let queueBusy = false, queueAgain = false;
  async function refreshQueue() {
    if (queueBusy) { queueAgain = true; return; }
    queueBusy = true;
    try { await loadQueue(); } finally { queueBusy = false; }
    if (queueAgain) { queueAgain = false; refreshQueue(); }
  }

  async function loadQueue() {
    const p = filterParams();
    p.set("page", qstate.page);
    p.set("per_page", qstate.per_page);
    p.set("order", "desc");
    let j;
    try { j = await api("/api/queue?" + p.toString()); } catch (e) { toast("Queue: " + e.message, true); return; }
    if (j.pages > 0 && qstate.page > j.pages) { qstate.page = j.pages; return loadQueue(); }
    lastQueue = j;
    // "partial": only while the index of parked messages is rebuilt after an unclean stop
    $("q-note").hidden = !j.partial;
    $("q-note").textContent = j.partial ? (j.note || "Not every queued message was searched.") : "";
    $("q-body").replaceChildren(...j.items.map(queueRow));
    $("q-empty").hidden = j.items.length > 0;
    $("q-empty").textContent = j.counts.all === 0 ? "The queue is empty." : "No message matches.";
    $("q-total").textContent = hasFilter() ? fmtNum(j.total) + " of " + fmtNum(j.counts.all) : fmtNum(j.counts.all);
    for (const k of ["all", "active", "deferred", "held"]) $("n-" + k).textContent = fmtNum(j.counts[k]);
    const first = j.total ? j.offset + 1 : 0, last = j.offset + j.items.length;
    $("p-info").textContent = fmtNum(first) + "–" + fmtNum(last) + " of " + fmtNum(j.total);
    $("p-prev").disabled = qstate.page <= 1;
    $("p-next").disabled = qstate.page >= j.pages;
    $("bulk-label").textContent = hasFilter() ? "Actions on the " + fmtNum(j.total) + " matching message(s):" : "Actions on every queued message:";
  }

  $("q-form").addEventListener("submit", (e) => {
    e.preventDefault();
    qstate.q = $("q-text").value.trim();
    qstate.domain = $("q-domain").value.trim();
    qstate.age = $("q-age").value;
    qstate.page = 1;
    refreshQueue();
  });
  $("q-age").addEventListener("change", () => $("q-form").requestSubmit());
  document.querySelectorAll(".tabs button").forEach((b) => {
    b.addEventListener("click", () => {
      qstate.state = b.dataset.state;
      qstate.page = 1;
      document.querySelectorAll(".tabs button").forEach((x) => {
        x.classList.toggle("on", x === b);
        x.setAttribute("aria-selected", String(x === b));
      });
      refreshQueue();
    });
  });
  $("p-prev").addEventListener("click", () => { if (qstate.page > 1) { qstate.page--; refreshQueue(); } });
  $("p-next").addEventListener("click", () => { qstate.page++; refreshQueue(); });
  $("p-per").addEventListener("change", () => { qstate.per_page = Number($("p-per").value); qstate.page = 1; refreshQueue(); });

  // ---- confirmation -----------------------------------------------------------
  function confirmAction(text, yesLabel) {
    const d = $("confirm");
    $("cf-text").textContent = text;
    $("cf-yes").textContent = yesLabel || "Confirm";
    return new Promise((resolve) => {
      const done = (v) => {
        $("cf-yes").onclick = $("cf-no").onclick = d.oncancel = null;
        d.close();
        resolve(v);
      };
      $("cf-yes").onclick = () => done(true);
      $("cf-no").onclick = () => done(false);
      d.oncancel = (e) => { e.preventDefault(); done(false); };
      d.showModal();
      $("cf-no").focus();
    });
  }

  const VERB = { retry: "Retry now", hold: "Hold", release: "Release", delete: "Delete" };

  // ---- message detail -----------------------------------------------------------
  let detailId = null;

  function envRow(dl, name, value) {
    dl.append(el("dt", { text: name }), el("dd", { text: value == null || value === "" ? "–" : String(value) }));
  }

  async function openDetail(id) {
    let m;
    try { m = await api("/api/queue/" + encodeURIComponent(id)); } catch (e) { toast(e.message, true); refreshQueue(); return; }
    detailId = m.id;
    $("d-id").textContent = m.id;
    $("d-subject").textContent = m.subject != null ? m.subject : "(no subject)";
    const dl = $("d-env");
    dl.replaceChildren();
    envRow(dl, "State", m.state + (m.held ? " (on hold)" : ""));
    envRow(dl, "Sender", m.sender || "<>");
    envRow(dl, "Arrived", fmtTime(m.arrival) + " (" + fmtAge(m.age) + " ago)");
    envRow(dl, "Size", fmtBytes(m.size) + " (" + fmtNum(m.size) + " bytes)");
    const c = m.client || {};
    envRow(dl, "Client", (c.name || "unknown") + " [" + (c.addr || "?") + "]");
    envRow(dl, "HELO", c.helo);
    envRow(dl, "Flags", (m.flags || []).join(", "));
    envRow(dl, "Next try", m.next_try ? fmtTime(m.next_try) : "–");
    $("d-rcpts").replaceChildren(...m.recipients.map((r) => el("tr", null,
      el("td", { class: "mono", text: r.address }),
      el("td", null, stateCell(r.state)),
      el("td", { class: "num", text: String(r.attempts) }),
      el("td", { text: r.next_try ? fmtTime(r.next_try) : "–" }),
      el("td", { text: (r.dsn ? r.dsn + " " : "") + (r.last_reply || "") }))));
    // Every attempt the message file records (the first and the last 20 per recipient).
    const hist = m.history || [];
    $("d-hist").replaceChildren(...(hist.length ? hist.map((a) => el("tr", null,
      el("td", { text: fmtTime(a.time) }),
      el("td", { class: "mono", text: a.recipient + (a.attempt ? " #" + a.attempt : "") }),
      el("td", null, stateCell(a.result)),
      el("td", { class: "mono", text: a.host || "–" }),
      el("td", { class: "reply", title: a.reply || "", text: (a.dsn ? a.dsn + " " : "") + (a.reply || "") }))) :
      [el("tr", null, el("td", { colspan: "5", class: "muted", text: "No delivery attempt yet." }))]));
    $("d-hist-note").textContent = m.history_omitted ? "(" + fmtNum(m.history_omitted) + " older attempts not shown)" : "";
    const lines = (m.headers || []).map((h) => h.name + ": " + h.value);
    $("d-headers").textContent = m.headers_error ? m.headers_error : lines.join("\n");
    $("d-trunc").textContent = m.headers_truncated ? "(truncated)" : "";
    const foot = document.querySelectorAll("#detail [data-act]");
    foot.forEach((b) => {
      const a = b.dataset.act;
      b.disabled = (a === "hold" && m.held) || (a === "release" && !m.held) || (a === "retry" && m.held);
    });
    const d = $("detail");
    if (!d.open) d.showModal();
  }

  $("d-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail")) $("detail").close(); });
  document.querySelectorAll("#detail [data-act]").forEach((b) => {
    b.addEventListener("click", async () => {
      const a = b.dataset.act, id = detailId;
      if (!id) return;
      if (a === "delete" || a === "hold") {
        const ok = await confirmAction(a === "delete"
          ? "Delete message " + id + "? It will not be delivered, and no bounce is sent."
          : "Hold message " + id + "? It stays queued but is not delivered until released.", VERB[a]);
        if (!ok) return;
      }
      try {
        if (a === "delete") await api("/api/queue/" + id, { method: "DELETE" });
        else await api("/api/queue/" + id + "/" + a, { method: "POST" });
      } catch (e) { toast(VERB[a] + ": " + e.message, true); return; }
      toast(VERB[a] + ": done for " + id);
      if (a === "delete") $("detail").close();
      else openDetail(id);
      refreshQueue();
      refreshStats();
    });
  });

  // ---- bulk actions ---------------------------------------------------------------
  document.querySelectorAll("[data-bulk]").forEach((b) => {
    b.addEventListener("click", async () => {
      const a = b.dataset.bulk;
      const filtered = hasFilter();
      const n = lastQueue ? (filtered ? lastQueue.total : lastQueue.counts.all) : 0;
      const what = filtered ? n + " message(s) matching the search" : "every queued message (" + n + ")";
      const text = a === "retry"
        ? "Retry " + (filtered ? what : "every deferred message") + " now?"
        : a === "delete" ? "Delete " + what + "? They will not be delivered, and no bounce is sent."
        : VERB[a] + " " + what + "?";
      if (!(await confirmAction(text, VERB[a]))) return;
      const body = Object.fromEntries(filterParams());
      if (!filtered && a !== "retry") body.all = true;
      try {
        const r = await api("/api/queue/" + a, { method: "POST", body });
        toast(VERB[a] + ": " + (r.changed != null ? r.changed + " of " + r.matched + " message(s) changed" : "done") +
          (r.partial ? " (" + (r.note || "not every queued message was searched") + ")" : ""));
      } catch (e) { toast(VERB[a] + ": " + e.message, true); }
      refreshQueue();
      refreshStats();
    });
  });

  // ---- timers -----------------------------------------------------------------------
  function every(ms, fn) {
    fn();
    setInterval(() => { if (!document.hidden) fn(); }, ms);
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) { refreshStats(); refreshHistory(); refreshQueue(); }
  });
  let resizeTimer = 0;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(resizeCharts, 100); });

  every(STATS_MS, refreshStats);
  every(STATS_MS, refreshDests);
  every(QUEUE_MS, () => { if (!$("detail").open && !$("confirm").open) refreshQueue(); });
  // uPlot is loaded with defer before this file, so it exists by now.
  every(HISTORY_MS, refreshHistory);
})();
