// dashboard.js: the tile row (request rate, error rate, 429s per route class) and a chart of the
// last five minutes, from the gateway's own Prometheus metrics sampled every few seconds.

import { metricsText } from "./api.js";
import { h, mount, svg } from "./dom.js";

const EVERY_MS = 5000;
const KEEP = 60; // samples: five minutes
const samples = [];
let timer = null;
let lastError = null;
let listener = null;

// Sums the series the dashboard shows out of Prometheus text.
export function parseMetrics(text) {
  const out = { total: 0, errors: 0, server: 0, limited: {} };
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    if (m[1] === "portcullis_requests_total") {
      out.total += value;
      if (labels.status === "4xx" || labels.status === "5xx") out.errors += value;
      if (labels.status === "5xx") out.server += value;
    } else if (m[1] === "portcullis_too_many_requests_total") {
      out.limited[labels.class] = (out.limited[labels.class] || 0) + value;
    }
  }
  return out;
}

async function sample() {
  try {
    const m = parseMetrics(await metricsText());
    samples.push({ t: Date.now(), ...m });
    if (samples.length > KEEP) samples.shift();
    lastError = null;
  } catch (err) {
    lastError = err.message;
  }
  if (listener) listener();
}

export function startSampling() {
  if (timer) return;
  sample();
  timer = setInterval(sample, EVERY_MS);
}

export function stopSampling() {
  clearInterval(timer);
  timer = null;
  samples.length = 0;
  listener = null;
}

// Per-second rates between consecutive samples.
function rates() {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    out.push({
      t: b.t,
      requests: Math.max(0, b.total - a.total) / dt,
      errors: Math.max(0, b.errors - a.errors) / dt,
    });
  }
  return out;
}

function fmt(n) {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

function tile(id, label, value, note) {
  return h(
    "section",
    { class: "tile", id, "aria-labelledby": `${id}-label` },
    h("h2", { id: `${id}-label` }, label),
    h("p", { class: "tile-value" }, value),
    h("p", { class: "hint" }, note),
  );
}

function limitedTile(last) {
  const first = samples.find((s) => last.t - s.t <= 60000) || samples[0];
  const classes = Object.keys(last.limited).sort();
  const list = h("ul", { class: "per-class" });
  for (const c of classes) {
    const minute = last.limited[c] - (first.limited[c] || 0);
    list.append(h("li", {}, h("span", { class: "class-name" }, c), h("span", {}, `${minute} in the last minute`)));
  }
  if (!classes.length) list.append(h("li", {}, "no route classes"));
  return h(
    "section",
    { class: "tile", id: "tile-429", "aria-labelledby": "tile-429-label" },
    h("h2", { id: "tile-429-label" }, "429 Too Many Requests, per class"),
    list,
  );
}

function tiles() {
  const last = samples[samples.length - 1];
  const r = rates();
  const now = r[r.length - 1];
  const waiting = "measuring…";
  const share = now && now.requests > 0 ? `${fmt((100 * now.errors) / now.requests)} %` : now ? "0 %" : waiting;
  return h(
    "div",
    { class: "tiles" },
    tile("tile-rate", "Request rate", now ? `${fmt(now.requests)} /s` : waiting, `${last.total} requests since start`),
    tile("tile-errors", "Error rate", share, `4xx and 5xx answers; ${last.server} were 5xx since start`),
    limitedTile(last),
  );
}

// The last minutes of request and error rates as two polylines.
function chart() {
  const r = rates();
  const W = 640;
  const H = 180;
  const pad = 28;
  const max = Math.max(1, ...r.map((p) => p.requests));
  // The window grows with the samples, from one minute to five.
  const end = Date.now();
  const first = samples.length ? samples[0].t : end;
  const span = Math.min(EVERY_MS * KEEP, Math.max(60000, Math.ceil((end - first) / 60000) * 60000));
  const x = (t) => pad + ((W - 2 * pad) * (t - (end - span))) / span;
  const y = (v) => H - pad - ((H - 2 * pad) * v) / max;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-labelledby": "chart-title" });
  const title = svg("title", { id: "chart-title" });
  title.textContent = `Requests and errors per second over the last ${span / 60000} min; peak ${fmt(max)} /s`;
  root.append(title);
  root.append(svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: "axis" }));
  root.append(svg("line", { x1: pad, y1: pad, x2: pad, y2: H - pad, class: "axis" }));
  for (const [text, tx, ty, anchor] of [
    [`${fmt(max)} /s`, pad + 4, pad - 8, "start"],
    ["0", pad - 6, H - pad + 4, "end"],
    [`${span / 60000} min ago`, pad, H - 8, "start"],
    ["now", W - pad, H - 8, "end"],
  ]) {
    const t = svg("text", { x: tx, y: ty, "text-anchor": anchor, class: "label" });
    t.textContent = text;
    root.append(t);
  }
  for (const [key, cls] of [["requests", "line-requests"], ["errors", "line-errors"]]) {
    const points = r.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    if (points) root.append(svg("polyline", { points, class: cls }));
    for (const p of r) root.append(svg("circle", { cx: x(p.t).toFixed(1), cy: y(p[key]).toFixed(1), r: 3, class: cls }));
  }
  return h(
    "figure",
    { class: "card" },
    root,
    h(
      "figcaption",
      { class: "legend" },
      h("span", { class: "key key-requests" }, "requests /s"),
      h("span", { class: "key key-errors" }, "errors /s"),
      h("span", { class: "hint" }, `sampled every ${EVERY_MS / 1000} s from /metrics`),
    ),
  );
}

function draw(ctx) {
  const body = samples.length
    ? [tiles(), chart()]
    : [h("p", { class: "muted" }, lastError ? "" : "Reading the metrics…")];
  const error = lastError
    ? h("div", { class: "error-box", role: "alert" }, h("p", {}, `Metrics unavailable: ${lastError}`))
    : null;
  const region = h("div", { id: "dashboard-body", "aria-live": "polite" }, error, body);
  const old = ctx.main.querySelector("#dashboard-body");
  if (old) old.replaceWith(region);
  else mount(ctx.main, h("h1", {}, "Dashboard"), region);
}

export async function dashboardPage(ctx) {
  draw(ctx);
  listener = () => {
    if (ctx.alive()) draw(ctx);
    else listener = null;
  };
}
