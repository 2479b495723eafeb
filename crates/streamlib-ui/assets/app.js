// The control room page: loads the graph once, polls the statistics twice a second, draws
// sparklines, and sends property changes to the server. Everything is built with
// textContent (element names and property values are never parsed as HTML).
"use strict";

const POLL_MS = 500;
const HISTORY = 120; // points per sparkline: one minute at 2 Hz

// For scripts and tests: whether the page is built, and how many stats answers it rendered.
window.controlRoom = { ready: false, statsUpdates: 0, lastStats: null, graph: null, errors: 0 };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function fmtUs(us) {
  if (us === undefined || us === null) return "–";
  if (us >= 1000) return (us / 1000).toFixed(us >= 10000 ? 0 : 1) + " ms";
  return us.toFixed(us >= 100 ? 0 : 1) + " µs";
}

// ---- sparklines -------------------------------------------------------------------------

class Sparkline {
  constructor(label, series) {
    this.canvas = el("canvas", { width: 110, height: 30 });
    this.value = el("span");
    this.node = el("div", { class: "plot" }, this.canvas, el("span", {}, label + " ", this.value));
    this.series = series; // [{color, values: []}]
  }
  push(values, text) {
    values.forEach((v, i) => {
      const s = this.series[i].values;
      s.push(Number.isFinite(v) ? v : 0);
      if (s.length > HISTORY) s.shift();
    });
    this.value.textContent = text;
    this.draw();
  }
  draw() {
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    const max = Math.max(1e-9, ...this.series.flatMap((s) => s.values));
    for (const s of this.series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.3;
      ctx.beginPath();
      s.values.forEach((v, i) => {
        const x = width - (s.values.length - 1 - i) * (width / (HISTORY - 1));
        const y = height - 2 - (v / max) * (height - 4);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
  }
}

// ---- properties -------------------------------------------------------------------------

async function setProperty(element, property, value, msg) {
  msg.className = "msg status";
  msg.textContent = "sending…";
  try {
    const url = `/api/elements/${encodeURIComponent(element)}/properties/${encodeURIComponent(property)}`;
    const res = await fetch(url, { method: "POST", body: String(value),
      headers: { "Content-Type": "text/plain; charset=utf-8" } });
    const answer = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (res.ok) {
      msg.className = "msg ok";
      msg.textContent = `applied: ${answer.value}`;
    } else {
      msg.className = "msg error";
      msg.textContent = answer.error || `HTTP ${res.status}`;
      window.controlRoom.errors++;
    }
  } catch (e) {
    msg.className = "msg error";
    msg.textContent = `not sent: ${e}`;
    window.controlRoom.errors++;
  }
}

// One row per property: live ones as a control fitting their type, the rest as text.
function propertyRow(element, prop) {
  const type = prop.type || {};
  const msg = el("span", { class: "msg" });
  const data = { "data-element": element, "data-property": prop.name };
  let control;
  if (!prop.live) {
    control = el("span", { class: "fixed", title: prop.doc }, prop.value ?? "");
  } else if (type.type === "bool") {
    const box = el("input", { type: "checkbox", checked: prop.value === "true", ...data });
    box.addEventListener("change", () => setProperty(element, prop.name, box.checked, msg));
    control = box;
  } else if (type.type === "enum" && Array.isArray(type.values)) {
    const select = el("select", data, ...type.values.map((v) =>
      el("option", { value: v, selected: v === prop.value }, v)));
    select.addEventListener("change", () => setProperty(element, prop.name, select.value, msg));
    control = select;
  } else if (type.type === "int" || type.type === "float") {
    const step = type.type === "int" ? "1" : "any";
    const number = el("input", { type: "number", step, value: prop.value ?? "",
      placeholder: prop.value === null ? "default" : "", ...data });
    const wrap = el("span", { class: "control" });
    const finite = (x) => typeof x === "number" && Number.isFinite(x) && Math.abs(x) < 1e9;
    if (finite(type.min) && finite(type.max)) {
      const range = el("input", { type: "range", min: type.min, max: type.max,
        step: type.type === "int" ? 1 : (type.max - type.min) / 200, "data-range-for": prop.name });
      if (prop.value !== null && prop.value !== undefined) range.value = prop.value;
      range.addEventListener("input", () => { number.value = range.value; });
      range.addEventListener("change", () => setProperty(element, prop.name, range.value, msg));
      number.addEventListener("change", () => { range.value = number.value; });
      wrap.append(range);
    }
    number.addEventListener("change", () => setProperty(element, prop.name, number.value, msg));
    wrap.prepend(number);
    control = wrap;
  } else {
    const text = el("input", { type: "text", value: prop.value ?? "", ...data });
    text.addEventListener("change", () => setProperty(element, prop.name, text.value, msg));
    control = text;
  }
  const name = el("span", { class: "name", title: `${prop.doc}${type.accepts ? " (" + type.accepts + ")" : ""}` },
    prop.name + (prop.live ? "" : ""));
  return el("div", { class: "prop" + (prop.live ? " live" : "") }, name, control, msg);
}

// ---- elements ---------------------------------------------------------------------------

const cards = new Map(); // name -> {stats cells, plots, last}

function elementCard(node) {
  const kind = node.preview_of ? " preview" : node.transfer ? " inserted" : "";
  const cells = {};
  const stats = el("div", { class: "stats" });
  for (const [key, label] of [["ticks", "ticks"], ["items_out", "out"], ["drops", "drops"],
    ["errors", "errors"], ["p50", "p50"], ["p99", "p99"], ["latency", "latency"], ["state", "state"]]) {
    cells[key] = el("span", { "data-stat": key }, "–");
    stats.append(el("span", { class: "k" }, label), cells[key]);
  }
  const plots = {
    process: new Sparkline("process p50/p99", [{ color: "#2463eb", values: [] }, { color: "#e8710a", values: [] }]),
    drops: new Sparkline("drops/s", [{ color: "#c62828", values: [] }]),
    latency: new Sparkline("latency p50", [{ color: "#0f9d8a", values: [] }]),
  };
  const heading = el("h3", {}, node.name, " ", el("span", { class: "handler" },
    `(${node.handler})${node.dispatcher ? " @" + node.dispatcher : ""}`));
  const card = el("div", { class: "element" + kind, "data-element": node.name }, heading);
  if (node.summary) card.append(el("p", { class: "summary" }, node.summary));
  if (node.inserted) card.append(el("p", { class: "summary" }, `inserted by negotiation: ${node.inserted}`));
  if (node.preview_of) card.append(el("p", { class: "summary" }, `preview tap of ${node.preview_of}`));
  card.append(stats, el("div", { class: "plots" }, plots.process.node, plots.drops.node, plots.latency.node));
  const live = (node.properties || []).filter((p) => p.live);
  const fixed = (node.properties || []).filter((p) => !p.live);
  if (live.length || fixed.length) {
    const props = el("div", { class: "props" });
    for (const p of [...live, ...fixed]) props.append(propertyRow(node.name, p));
    card.append(props);
  }
  const error = el("div", { class: "error" });
  card.append(error);
  cards.set(node.name, { cells, plots, error, last: null });
  return card;
}

function renderLinks(graph) {
  const body = $("#links tbody");
  body.replaceChildren(...graph.edges.map((e) => {
    const inserted = [e.transfer, ...(e.converters || [])].filter(Boolean).join(" → ");
    return el("tr", {}, el("td", {}, e.from), el("td", {}, e.to), el("td", {}, e.memory),
      el("td", {}, e.caps), el("td", {}, inserted));
  }));
}

function renderStats(stats) {
  const status = $("#status");
  if (!stats.running) {
    status.textContent = "pipeline not running";
    status.className = "status bad";
  } else {
    status.textContent = `running · ${stats.tick_rate ? stats.tick_rate.toFixed(1) : "–"} ticks/s`;
    status.className = "status ok";
    $("#clock").textContent = `clock ${stats.clock} · ticks ${stats.clock_ticks} · missed ${stats.clock_missed} · ${stats.elapsed_s.toFixed(1)} s`;
  }
  for (const s of stats.streams || []) {
    const card = cards.get(s.id);
    if (!card) continue;
    const c = card.cells;
    c.ticks.textContent = s.ticks;
    c.items_out.textContent = s.items_out;
    c.drops.textContent = s.drops;
    c.errors.textContent = s.errors;
    c.p50.textContent = fmtUs(s.process_p50_us);
    c.p99.textContent = fmtUs(s.process_p99_us);
    c.latency.textContent = fmtUs(s.latency_p50_us);
    c.state.textContent = s.state;
    const dt = card.last ? (stats.time_ms - card.last.time_ms) / 1000 : 0;
    const dropRate = card.last && dt > 0 ? Math.max(0, s.drops - card.last.drops) / dt : 0;
    card.plots.process.push([s.process_p50_us, s.process_p99_us], `${fmtUs(s.process_p50_us)} / ${fmtUs(s.process_p99_us)}`);
    card.plots.drops.push([dropRate], dropRate.toFixed(1));
    card.plots.latency.push([s.latency_p50_us], fmtUs(s.latency_p50_us));
    card.error.textContent = s.error ? `last error: ${s.error}` : "";
    card.last = { time_ms: stats.time_ms, drops: s.drops };
    if (s.report) previewReports.set(s.id, s.report);
  }
}

// ---- previews (WHEP from the preview taps' webrtcsink) ----------------------------------

const previewReports = new Map(); // element -> its handler report (carries `whep_url`)
let previewSession = null;

function setupPreviews(graph) {
  if (!graph.previews || graph.previews.length === 0) return;
  $("#preview-section").hidden = false;
  const select = $("#preview-select");
  select.replaceChildren(...graph.previews.map((p) =>
    el("option", { value: p.element }, `${p.source} (${p.element})`)));
  $("#preview-play").addEventListener("click", () => playPreview(select.value));
  $("#preview-stop").addEventListener("click", stopPreview);
}

async function stopPreview() {
  const session = previewSession;
  previewSession = null;
  window.controlRoom.preview = null;
  $("#preview").srcObject = null;
  $("#preview-status").textContent = "stopped";
  if (session) await session.stop().catch(() => {});
}

// The sink's own WHEP client (`whepPlay`, served by every webrtcsink at /whep.js).
function loadWhepClient(whepUrl) {
  if (window.whepPlay) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = el("script", { src: new URL("/whep.js", whepUrl).toString() });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${script.src}`));
    document.head.append(script);
  });
}

// Plays the preview tap `element` in the page's video: a WHEP viewer (RFC 9725) of its sink.
async function playPreview(element) {
  await stopPreview();
  const status = $("#preview-status");
  const url = (previewReports.get(element) || {}).whep_url;
  if (!url) {
    status.textContent = `no WHEP URL reported by ${element} yet`;
    status.className = "status bad";
    return;
  }
  status.className = "status";
  status.textContent = `connecting to ${url}…`;
  try {
    await loadWhepClient(url);
    const session = await window.whepPlay(url, $("#preview"), { audio: false });
    previewSession = session;
    window.controlRoom.preview = { element, url };
    const show = () => { status.textContent = `${element}: ${session.pc.connectionState}`; };
    session.pc.addEventListener("connectionstatechange", show);
    show();
  } catch (e) {
    status.className = "status bad";
    status.textContent = `preview failed: ${e.message || e}`;
  }
}

// ---- main -------------------------------------------------------------------------------

async function poll() {
  try {
    const res = await fetch("/api/stats", { cache: "no-store" });
    const stats = await res.json();
    renderStats(stats);
    window.controlRoom.lastStats = stats;
    window.controlRoom.statsUpdates++;
  } catch (e) {
    $("#status").textContent = `server unreachable: ${e}`;
    $("#status").className = "status bad";
  }
  setTimeout(poll, POLL_MS);
}

async function main() {
  let graph;
  try {
    const res = await fetch("/api/graph", { cache: "no-store" });
    graph = await res.json();
    if (!res.ok) throw new Error(graph.error || `HTTP ${res.status}`);
  } catch (e) {
    $("#status").textContent = `cannot load the graph: ${e}`;
    $("#status").className = "status bad";
    setTimeout(main, 1000);
    return;
  }
  window.controlRoom.graph = graph;
  $("#pipeline").textContent = graph.pipeline;
  drawGraph($("#graph"), graph);
  renderLinks(graph);
  $("#elements").replaceChildren(...graph.nodes.map(elementCard));
  setupPreviews(graph);
  window.controlRoom.ready = true;
  document.documentElement.dataset.ready = "true";
  poll();
}

main();
