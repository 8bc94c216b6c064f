// The console. Rules:
// - Its only data source is the HTTP API (/api/v1: versions, summaries, vhosts, streams,
//   clients, clusters; DELETE /api/v1/clients/ID kicks). It works with srsedge's API and SRS's
//   (an API without srsedge's cluster directories shows "no cluster directory").
// - The API's base URL: ?api=URL, else the one saved in this browser, else this page's host with
//   the port of http_api.listen from config.js (window.SRSEDGE; on an https page the port of
//   http_api.https). The API may be on another port
//   (CORS: http_api { crossdomain on; }). A link's ?api= naming another origin than the saved
//   or default API is used only when the operator confirms it (a link can come from anyone).
// - Auth: a 401 shows a login form; the credentials are kept in sessionStorage (this tab) only,
//   keyed by the API's origin, and go as HTTP basic auth only to the origin they were entered
//   for (looked up per request, redirects refused): ?api= cannot send them elsewhere.
// - Everything from the API is escaped (esc) or forced to a number (num) before it is shown:
//   ?api= can point the page at any server. The cluster panel is built from DOM nodes whose
//   text is set as text (el): its names come from whoever registered in the directory.
// - Moves: the page remembers each stream's last owner (from the clusters' owned lists) and
//   lists the changes it sees, newest first (MOVES_SHOWN).
// - Refreshes every REFRESH_MS; per-stream bitrate (from the byte counters' deltas) and player
//   counts are sampled here and kept for HISTORY_MS for the charts (plain SVG). A chart spans
//   what the page has seen, at least MIN_SPAN_MS and at most HISTORY_MS.
"use strict";
(function () {
  const REFRESH_MS = 2000;
  const HISTORY_MS = 5 * 60 * 1000;
  const MIN_SPAN_MS = 60 * 1000;
  const RATE_WINDOW_MS = 10000;          // bitrate = bytes over at least this window
  const MOVES_SHOWN = 20;
  const OWNERS_KEPT = 10000;             // streams whose last owner the page remembers
  const conf = window.SRSEDGE || {};
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const history = new Map();            // stream key -> [{t, recv, send, players}]
  const lastOwner = new Map();          // directory url + stream key -> owner id
  const moves = [];                     // [{t, stream, from, to}], newest first
  let paused = false;
  let timer = null;
  let busy = false;

  // ------------------------------------------------------------ the API
  // an https page uses the API's https port (http_api.https): a browser refuses http from it
  function defaultApi() {
    const api = conf.api || {};
    const port = location.protocol === "https:" && api.tls_port ? api.tls_port : (api.port || 1985);
    return `${location.protocol}//${location.hostname}:${port}`;
  }
  // an address as typed: no trailing slash, this page's scheme when none is given
  function apiAddress(text) {
    const a = String(text || "").trim().replace(/\/+$/, "");
    return !a || /^https?:\/\//i.test(a) ? a : `${location.protocol}//${a}`;
  }
  function originOf(url) {
    try { return new URL(url).origin; } catch (e) { return ""; }
  }
  // ?api= from a link: taken at once when it names the saved or default API, else only when the
  // operator says yes (the link may come from anyone; credentials never follow it, see authFor)
  function chooseApi() {
    const known = apiAddress(localStorage.getItem("srsedge.api")) || defaultApi();
    const asked = apiAddress(params.get("api"));
    const origin = originOf(asked);
    if (!asked || !origin || origin === "null") return known;
    if (origin === originOf(known) || origin === originOf(defaultApi())) return asked;
    const ok = confirm(`This link points the console at another server's API:\n\n${origin}\n\n` +
      `Connect to it? Credentials you entered for ${originOf(known)} are not sent there.`);
    return ok ? asked : known;
  }
  sessionStorage.removeItem("srsedge.auth");   // older pages kept one login for every API
  const authKey = (base) => `srsedge.auth ${originOf(base)}`;
  const authFor = (base) => sessionStorage.getItem(authKey(base)) || "";
  let apiBase = chooseApi();

  class ApiError extends Error {
    constructor(kind, text) { super(text); this.kind = kind; }
  }

  async function api(path, method) {
    const headers = {};
    const auth = authFor(apiBase);
    if (auth) headers.Authorization = `Basic ${auth}`;
    let r;
    try {
      r = await fetch(apiBase + path, { method: method || "GET", headers, cache: "no-store",
                                        credentials: "omit", mode: "cors", redirect: "error" });
    } catch (e) {
      throw new ApiError("network", String(e.message || e));
    }
    if (r.status === 401) throw new ApiError("auth", "401 Unauthorized");
    if (!r.ok) throw new ApiError("http", `HTTP ${r.status} for ${path}`);
    const body = await r.json();
    if (body.code !== 0) throw new ApiError("code", `code ${body.code} for ${path}`);
    return body;
  }

  // ------------------------------------------------------------ formatting
  const esc = (s) => String(s === undefined || s === null ? "" : s)
    .replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const num = (v) => (Number.isFinite(v) ? v : 0);
  function kbps(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "-";
    if (v >= 10000) return `${(v / 1000).toFixed(1)} Mbps`;
    return v >= 1000 ? `${(v / 1000).toFixed(2)} Mbps` : `${Math.round(v)} kbps`;
  }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s % 60}s`;
  }
  function statusDot(kind, text) {
    $("status").innerHTML = `<span class="dot ${kind}"></span>${esc(text)}`;
  }
  function banner(html, info) {
    $("banner").innerHTML = html || "";
    $("banner").classList.toggle("hidden", !html);
    $("banner").classList.toggle("info", !!info);
  }
  function fill(table, rows, emptyId) {
    document.querySelector(`#${table} tbody`).innerHTML = rows.join("");
    if (emptyId) $(emptyId).classList.toggle("hidden", rows.length > 0);
  }

  // ------------------------------------------------------------ one refresh
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const [sum, vh, st, cl, clu] = await Promise.all([
        api("/api/v1/summaries"), api("/api/v1/vhosts"),
        api("/api/v1/streams?count=200"), api("/api/v1/clients?count=1000"),
        api("/api/v1/clusters").catch(() => null)]);      // SRS's differs, older srsedge: none
      $("login").classList.add("hidden");
      banner("");
      const now = Date.now();
      const vhosts = vh.vhosts || [];
      const streams = st.streams || [];
      const clients = cl.clients || [];
      const vhostName = new Map(vhosts.map((v) => [v.id, v.name]));
      showSummary(sum.data || {}, vhosts, streams, clients);
      const players = countPlayers(streams, clients, (cl.total || clients.length) <= clients.length);
      sample(now, streams, players);
      const directories = ((clu && clu.data) || {}).directories || [];
      noteMoves(directories, now);
      showCluster(directories);
      showStreams(streams, clients, players, vhostName, new Set(directories.map((d) => d.self)));
      showCharts(streams, vhostName);
      showClients(clients, streams);
      showVhosts(vhosts);
      statusDot("good", `live · ${new Date(now).toLocaleTimeString()}`);
    } catch (e) {
      showError(e);
    } finally {
      busy = false;
    }
  }

  function showError(e) {
    if (e.kind === "auth") {
      statusDot("warn", "login needed");
      $("login").classList.remove("hidden");
      $("login-api").textContent = originOf(apiBase);
      banner(authFor(apiBase) ? "The API refused these credentials." : "", !authFor(apiBase));
      return;
    }
    statusDot("bad", "no API");
    const local = conf.api && conf.api.host === "127.0.0.1" && !/^(localhost|127\.)/.test(location.hostname);
    let hint = "Is <code>http_api</code> enabled and listening on that address, with " +
      "<code>crossdomain on;</code>? Change the address in the bar above.";
    if (local) {
      hint += " This server's API listens on 127.0.0.1 only: set <code>http_api { listen " +
        "0.0.0.0:" + esc(conf.api.port) + "; }</code> to reach it from another machine.";
    }
    banner(`Cannot read the API at <code>${esc(apiBase)}</code>: ${esc(e.message)}.<br>${hint}`);
  }

  function showSummary(data, vhosts, streams, clients) {
    const self = data.self || {}, sys = data.system || {};
    $("c-cpu").textContent = self.cpu_percent !== undefined ? `${(self.cpu_percent * 100).toFixed(1)}%` : "-";
    $("c-cpu-s").textContent = sys.cpu_percent !== undefined
      ? `machine ${(sys.cpu_percent * 100).toFixed(0)}% of ${sys.cpus || "?"} CPUs` : "";
    $("c-mem").textContent = self.mem_kbyte !== undefined ? `${(self.mem_kbyte / 1024).toFixed(0)} MB` : "-";
    $("c-mem-s").textContent = self.mem_percent !== undefined ? `${(self.mem_percent * 100).toFixed(1)}% of RAM` : "";
    const conns = sys.conn_srs !== undefined ? sys.conn_srs : clients.length;
    $("c-conn").textContent = conns;
    const publishers = clients.filter((c) => c.publish).length;
    $("c-conn-s").textContent = `${publishers} publishing, ${clients.length - publishers} playing`;
    $("c-streams").textContent = streams.length;
    const edges = streams.filter((s) => s.edge).length;
    $("c-streams-s").textContent = edges ? `${edges} pulled by this edge` : `${vhosts.length} vhosts`;
    const sumKbps = (key) => vhosts.reduce((a, v) => a + ((v.kbps || {})[key] || 0), 0);
    $("c-in").textContent = kbps(sumKbps("recv_30s"));
    $("c-out").textContent = kbps(sumKbps("send_30s"));
    $("c-version").textContent = conf.server || (self.version ? `v${self.version}` : "-");
    $("c-uptime").textContent = `pid ${self.pid || "?"}` +
      (self.srs_uptime !== undefined ? ` · up ${duration(self.srs_uptime)}` : "");
  }

  // Players per stream: its listed clients that do not publish (when the list is complete),
  // else the stream's client count without its publisher.
  function countPlayers(streams, clients, complete) {
    const counts = new Map();
    for (const s of streams) {
      counts.set(s.id, complete ? 0
        : Math.max(0, (s.clients || 0) - (s.publish && s.publish.active && !s.edge ? 1 : 0)));
    }
    if (complete) {
      for (const c of clients) {
        if (!c.publish && counts.has(c.stream)) counts.set(c.stream, counts.get(c.stream) + 1);
      }
    }
    return counts;
  }

  function streamKey(s) { return `${s.vhost}/${s.app}/${s.name}`; }

  function sample(now, streams, players) {
    const live = new Set();
    for (const s of streams) {
      const key = streamKey(s);
      live.add(key);
      if (!history.has(key)) history.set(key, []);
      const h = history.get(key);
      const k = s.kbps || {};
      h.push({ t: now, recv: s.recv_bytes || 0, send: s.send_bytes || 0, players: players.get(s.id) || 0,
               recv_30s: k.recv_30s, send_30s: k.send_30s });
      while (h.length && h[0].t < now - HISTORY_MS) h.shift();
    }
    for (const key of history.keys()) if (!live.has(key)) history.delete(key);
  }

  // kbps series over the history: each point from the byte counter RATE_WINDOW_MS before it;
  // until the page has sampled that long, the API's own 30 s average
  function rates(h, field) {
    const out = [];
    let j = 0;
    for (let i = 0; i < h.length; i++) {
      while (j < i && h[i].t - h[j + 1].t >= RATE_WINDOW_MS) j++;
      const dt = h[i].t - h[j].t;
      if (i === j || dt < RATE_WINDOW_MS / 2) {
        const api = h[i][`${field}_30s`];
        if (Number.isFinite(api)) out.push([h[i].t, api]);
        continue;
      }
      out.push([h[i].t, Math.max(0, h[i][field] - h[j][field]) * 8 / dt]);  // bytes/ms*8 = kbps
    }
    return out;
  }

  function lastRate(key, field, fallback) {
    const r = rates(history.get(key) || [], field);
    return r.length ? r[r.length - 1][1] : fallback;
  }

  function codecCell(v) {
    if (!v) return "<span class='muted'>-</span>";
    const size = v.width ? `${num(v.width)}x${num(v.height)}` : "";
    return `${esc(v.codec)} <span class="sub">${esc(v.profile || "")} ${esc(v.level || "")}</span><br><span class="sub">${size}</span>`;
  }

  function audioCell(a) {
    if (!a) return "<span class='muted'>-</span>";
    const ch = a.channel === 1 ? "mono" : a.channel === 2 ? "stereo" : `${num(a.channel)} ch`;
    const rate = num(a.sample_rate) ? `${num(a.sample_rate) / 1000} kHz` : "";
    return `${esc(a.codec)} <span class="sub">${esc(a.profile || "")}</span><br><span class="sub">${rate} ${ch}</span>`;
  }

  function edgeCell(e) {
    if (!e) return "<span class='muted'>origin</span>";
    const cls = e.state === "streaming" ? "good" : ["connecting", "waiting", "backoff", "stopping"].includes(e.state) ? "warn" : e.state === "error" ? "bad" : "";
    const gap = e.last_gap_ms !== null && e.last_gap_ms !== undefined ? `, last switch gap ${num(e.last_gap_ms)} ms` : "";
    const err = e.last_error ? `<br><span class="sub bad">${esc(e.last_error)}</span>` : "";
    return `<span class="pill ${cls}">${esc(e.state)}</span> &larr; <code>${esc(e.origin || "-")}</code>` +
      `<br><span class="sub">${num(e.failovers)} failovers${gap}</span>${err}`;
  }

  function publisherCell(s, byId) {
    if (s.edge) return `<span class="sub">edge pull</span><br><code>${esc(s.edge.origin || "-")}</code>`;
    if (!s.publish || !s.publish.active) return "<span class='muted'>none</span>";
    const c = byId.get(s.publish.cid);
    return `<code>${esc(s.publish.cid || "?")}</code>` + (c ? `<br><span class="sub">${esc(c.ip)} · ${esc(c.type)}</span>` : "");
  }

  function ownerCell(owner, selfIds) {
    if (!owner) return "<span class='muted'>-</span>";
    return `<code>${esc(owner)}</code>` + (selfIds.has(owner) ? ' <span class="sub">(this server)</span>' : "");
  }

  function showStreams(streams, clients, players, vhostName, selfIds) {
    const byId = new Map(clients.map((c) => [c.id, c]));
    const local = conf.vhosts && conf.vhosts[conf.default_vhost];
    const rows = streams.map((s) => {
      const key = streamKey(s);
      const vname = vhostName.get(s.vhost) || s.vhost;
      const shown = vname === "__defaultVhost__" ? `${s.app}/${s.name}` : `${vname} ${s.app}/${s.name}`;
      const kin = lastRate(key, "recv", (s.kbps || {}).recv_30s);
      const kout = lastRate(key, "send", (s.kbps || {}).send_30s);
      let watch = "";
      if (vname === "__defaultVhost__" && local) {
        const q = `stream=${encodeURIComponent(s.app + "/" + s.name)}`;
        if (local.flv) watch += `<a href="/players/?${q}&type=flv">FLV</a> `;
        if (local.hls) watch += `<a href="/players/?${q}&type=hls">HLS</a>`;
      }
      return `<tr data-stream="${esc(s.app + "/" + s.name)}" data-id="${esc(s.id)}">` +
        `<td><b>${esc(shown)}</b><br><span class="sub">${esc(s.id)} · ${s.publish && s.publish.active ? "live" : "idle"}</span></td>` +
        `<td>${codecCell(s.video)}</td><td>${audioCell(s.audio)}</td><td>${publisherCell(s, byId)}</td>` +
        `<td class="owner">${ownerCell(s.owner, selfIds)}</td><td class="num players">${players.get(s.id) || 0}</td><td class="num">${kbps(kin)}</td>` +
        `<td class="num">${kbps(kout)}</td><td>${edgeCell(s.edge)}</td><td>${watch || "-"}</td></tr>`;
    });
    fill("streams", rows, "streams-empty");
  }

  function path(points, x, y) {
    return points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
  }

  function axisKbps(v) {
    return v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}M` : `${Math.round(v)}k`;
  }

  function chartSvg(h, now) {
    const W = 400, H = 110, L = 44, R = 26, T = 6, B = 16;
    const inR = rates(h, "recv"), outR = rates(h, "send");
    const pl = h.map((p) => [p.t, p.players]);
    const maxK = Math.max(100, ...inR.map((p) => p[1]), ...outR.map((p) => p[1])) * 1.15;
    const maxP = Math.max(2, ...pl.map((p) => p[1]));
    const span = Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, h.length ? now - h[0].t : 0));
    const t0 = now - span;
    const x = (t) => L + ((t - t0) / span) * (W - L - R);
    const yK = (v) => T + (1 - v / maxK) * (H - T - B);
    const yP = (v) => T + (1 - v / (maxP * 1.15)) * (H - T - B);
    let grid = "";
    for (let i = 0; i <= 2; i++) {
      const v = (maxK / 1.15) * i / 2, yy = yK(v);
      grid += `<line class="grid" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/>` +
        `<text x="${L - 4}" y="${yy + 3}" text-anchor="end">${axisKbps(v)}</text>`;
    }
    grid += `<text x="${W - R + 4}" y="${yP(maxP) + 3}">${maxP}</text><text x="${W - R + 4}" y="${yP(0) + 3}">0</text>`;
    const step = span / 4;
    for (let i = 0; i <= 4; i++) {
      const ago = Math.round((i * step) / 1000);
      const label = !i ? "now" : ago >= 60 ? `-${(ago / 60).toFixed(ago % 60 ? 1 : 0)}m` : `-${ago}s`;
      grid += `<text x="${x(now - i * step)}" y="${H - 3}" text-anchor="middle">${label}</text>`;
    }
    const dot = (pts, cls, y) => pts.length
      ? `<circle class="${cls}" r="2.5" cx="${x(pts[pts.length - 1][0])}" cy="${y(pts[pts.length - 1][1])}"/>` : "";
    return `<svg viewBox="0 0 ${W} ${H}">${grid}` +
      `<path class="in" d="${path(inR, x, yK)}"/><path class="out" d="${path(outR, x, yK)}"/>` +
      `<path class="players" d="${path(pl, x, yP)}"/>` +
      dot(inR, "in", yK) + dot(outR, "out", yK) + dot(pl, "players", yP) + "</svg>";
  }

  function showCharts(streams, vhostName) {
    const now = Date.now();
    const cards = streams.slice(0, 12).map((s) => {
      const h = history.get(streamKey(s)) || [];
      const vname = vhostName.get(s.vhost) || s.vhost;
      const last = h.length ? h[h.length - 1].players : 0;
      return `<div class="chart" data-stream="${esc(s.app + "/" + s.name)}"><div class="title">` +
        `<b>${esc(vname === "__defaultVhost__" ? "" : vname + " ")}${esc(s.app)}/${esc(s.name)}</b>` +
        `<span class="muted">${kbps(lastRate(streamKey(s), "recv", null))} in · ${last} player${last === 1 ? "" : "s"}</span></div>` +
        chartSvg(h, now) + "</div>";
    });
    $("charts").innerHTML = cards.join("");
    $("charts-empty").classList.toggle("hidden", cards.length > 0);
  }

  function showClients(clients, streams) {
    const names = new Map(streams.map((s) => [s.id, `${s.app}/${s.name}`]));
    const rows = clients.map((c) => {
      const k = c.kbps || {};
      return `<tr data-client="${esc(c.id)}"><td><code>${esc(c.id)}</code></td>` +
        `<td><span class="pill ${c.publish ? "good" : ""}">${esc(c.type)}</span></td>` +
        `<td>${esc(names.get(c.stream) || c.url || c.name)}</td><td>${esc(c.ip)}</td>` +
        `<td class="num">${duration(c.alive || 0)}</td><td class="num">${kbps(k.recv_30s)}</td>` +
        `<td class="num">${kbps(k.send_30s)}</td>` +
        `<td><button class="danger kick" data-id="${esc(c.id)}" data-what="${esc(c.type + " " + (c.url || "") + " from " + c.ip)}">Kick</button></td></tr>`;
    });
    fill("clients", rows, "clients-empty");
  }

  function showVhosts(vhosts) {
    fill("vhosts", vhosts.map((v) => {
      const k = v.kbps || {};
      const hls = v.hls && v.hls.enabled ? `on${num(v.hls.fragment) ? ", " + num(v.hls.fragment) + " s" : ""}` : "off";
      return `<tr><td><b>${esc(v.name)}</b><br><span class="sub">${esc(v.id)}</span></td>` +
        `<td>${v.enabled ? "<span class='good'>yes</span>" : "<span class='bad'>no</span>"}</td>` +
        `<td class="num">${num(v.streams)}</td><td class="num">${num(v.clients)}</td>` +
        `<td class="num">${kbps(k.recv_30s)}</td><td class="num">${kbps(k.send_30s)}</td><td>${hls}</td></tr>`;
    }));
  }

  // ------------------------------------------------------------ the cluster (srsedge, issue 21)
  // an element with attributes and children; strings become text nodes, never markup
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children) node.append(c instanceof Node ? c : String(c === undefined || c === null ? "" : c));
    return node;
  }
  const shortKey = (key) => String(key).replace(/^__defaultVhost__\//, "");

  function noteMoves(directories, now) {
    for (const d of directories) {
      for (const o of d.origins || []) {
        for (const key of o.owned || []) {
          const from = lastOwner.get(`${d.url} ${key}`);
          if (from && from !== o.id) moves.unshift({ t: now, stream: shortKey(key), from, to: o.id });
          lastOwner.set(`${d.url} ${key}`, o.id);
        }
      }
    }
    moves.splice(MOVES_SHOWN);
    for (const key of lastOwner.keys()) {
      if (lastOwner.size <= OWNERS_KEPT) break;
      lastOwner.delete(key);
    }
  }

  function showCluster(directories) {
    const clustered = directories.length > 0;
    $("cluster-none").classList.toggle("hidden", clustered);
    $("streams").classList.toggle("no-owner", !clustered);
    $("directories").replaceChildren(...directories.map(directoryView));
    $("moves-box").classList.toggle("hidden", !clustered);
    $("moves").replaceChildren(...moves.map((m) => el("li", {},
      `${new Date(m.t).toLocaleTimeString()} ${m.stream}: ${m.from} → ${m.to}`)));
    $("moves-empty").classList.toggle("hidden", moves.length > 0);
  }

  function directoryView(d) {
    const state = el("p", { class: "directory-state" }, el("code", {}, d.url), " ",
      el("span", { class: `pill ${d.reachable ? "good" : "bad"}` }, d.reachable ? "reachable" : "unreachable"),
      " · this server ", el("code", {}, d.self), ` (${d.role})`,
      ` · ${num(d.held)} leases held · `, el("span", { class: "moves-seen" }, num(d.moves_seen)),
      " moves seen" + (d.reachable ? ` · ${num(d.streams)} streams` : ""));
    if (!d.reachable) return el("div", { class: "directory" }, state, el("p", { class: "bad" }, d.error));
    const head = [["id", "Origin"], ["kind", "Kind"], ["rtmp", "RTMP"], ["http", "HTTP"], ["api", "API"],
      ["publishers num", "Publishers"], ["streams num", "Streams"], ["players num", "Players"],
      ["cpu num", "CPU"], ["owned num", "Owned"], ["owned-streams", "Owned streams"]];
    const table = el("table", { class: "origins" },
      el("thead", {}, el("tr", {}, ...head.map(([cls, text]) => el("th", { class: cls }, text)))),
      el("tbody", {}, ...(d.origins || []).map((o) => originRow(o, d.self))));
    return el("div", { class: "directory" }, state, table);
  }

  function originRow(o, self) {
    const load = o.load || {};
    const owned = (o.owned || []).map(shortKey);
    const more = num(o.streams_owned) - owned.length;
    const cell = (cls, ...content) => el("td", { class: cls }, ...content);
    const count = (cls, v) => cell(`${cls} num`, num(v));
    return el("tr", { "data-origin": o.id },
      cell("id", el("b", {}, o.id), o.id === self ? el("span", { class: "sub" }, " (this server)") : ""),
      cell("kind", o.kind), cell("rtmp", o.rtmp), cell("http", o.http || "-"), cell("api", o.api || "-"),
      count("publishers", load.publishers), count("streams", load.streams), count("players", load.players),
      cell("cpu num", Number.isFinite(load.cpu) ? `${load.cpu.toFixed(1)}%` : "-"),
      count("owned", o.streams_owned),
      cell("owned-streams", el("div", { class: "owned-list" },
        owned.join(", ") + (more > 0 ? ` and ${more} more` : ""))));
  }

  // ------------------------------------------------------------ actions
  async function kick(button) {
    const id = button.dataset.id;
    if (!confirm(`Kick client ${id} (${button.dataset.what})?`)) return;
    button.disabled = true;
    try {
      await api(`/api/v1/clients/${encodeURIComponent(id)}`, "DELETE");
      banner(`Client ${esc(id)} kicked.`, true);
    } catch (e) {
      banner(`Kick ${esc(id)} failed: ${esc(e.message)}`);
    }
    refresh();
  }

  function schedule() {
    clearInterval(timer);
    timer = setInterval(() => { if (!paused) refresh(); }, REFRESH_MS);
  }

  $("api").value = apiBase;
  $("api-shown").textContent = apiBase;
  $("api-form").addEventListener("submit", (e) => {
    e.preventDefault();
    apiBase = apiAddress($("api").value) || defaultApi();
    $("api").value = apiBase;
    $("api-shown").textContent = apiBase;
    if (apiBase === defaultApi()) localStorage.removeItem("srsedge.api");
    else localStorage.setItem("srsedge.api", apiBase);
    history.clear();
    lastOwner.clear();
    moves.length = 0;
    refresh();
  });
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    const auth = btoa(unescape(encodeURIComponent(`${$("user").value}:${$("password").value}`)));
    sessionStorage.setItem(authKey(apiBase), auth);
    refresh();
  });
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (!paused) refresh();
  });
  document.addEventListener("click", (e) => {
    if (e.target.classList && e.target.classList.contains("kick")) kick(e.target);
  });
  refresh();
  schedule();
})();
