// Draws the negotiated graph as SVG: one box per element (inserted transfers and converters
// dashed, preview taps dotted), an arrow per hop, the caps on each link's last hop.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// `stream.port` -> stream.
function nodeOf(port) {
  const i = port.indexOf(".");
  return i < 0 ? port : port.slice(0, i);
}

// Every hop of every link: from -> transfer -> converters -> to, as the DOT output draws them.
function graphHops(graph) {
  const hops = [];
  for (const edge of graph.edges) {
    const chain = [nodeOf(edge.from)];
    if (edge.transfer) chain.push(edge.transfer);
    for (const c of edge.converters || []) chain.push(c);
    chain.push(nodeOf(edge.to));
    for (let i = 0; i + 1 < chain.length; i++) {
      hops.push({ from: chain[i], to: chain[i + 1], edge, last: i + 2 === chain.length });
    }
  }
  return hops;
}

// Column of each node: its longest path from a source (bounded, so a cycle cannot hang it).
function ranks(names, hops) {
  const rank = new Map(names.map((n) => [n, 0]));
  for (let round = 0; round < names.length; round++) {
    let changed = false;
    for (const h of hops) {
      const r = (rank.get(h.from) || 0) + 1;
      if (rank.has(h.to) && r > rank.get(h.to)) { rank.set(h.to, r); changed = true; }
    }
    if (!changed) break;
  }
  return rank;
}

function shorten(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

function drawGraph(container, graph) {
  const W = 196, H = 48, GX = 130, GY = 28, PAD = 12;
  const names = graph.nodes.map((n) => n.name);
  const hops = graphHops(graph);
  const rank = ranks(names, hops);
  const columns = [];
  for (const node of graph.nodes) {
    const r = rank.get(node.name) || 0;
    (columns[r] = columns[r] || []).push(node);
  }
  const pos = new Map();
  columns.forEach((col, c) => col.forEach((node, i) => {
    pos.set(node.name, { x: PAD + c * (W + GX), y: PAD + i * (H + GY) });
  }));
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + rows * (H + GY) - GY;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const defs = svgEl("defs");
  const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.appendChild(svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#7b8496" }));
  defs.appendChild(marker);
  svg.appendChild(defs);

  for (const h of hops) {
    const a = pos.get(h.from), b = pos.get(h.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    svg.appendChild(svgEl("path", { class: "edge", "marker-end": "url(#arrow)",
      d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}` }));
    if (h.last) {
      const label = svgEl("text", { class: "edge-label", x: mx, y: (y1 + y2) / 2 - 4,
        "text-anchor": "middle" }, shorten(h.edge.caps.replace(/^(video|audio) /, ""), 22));
      label.appendChild(svgEl("title", {}, `${h.edge.from} → ${h.edge.to}: ${h.edge.memory}, ${h.edge.caps}`));
      svg.appendChild(label);
    }
  }
  for (const node of graph.nodes) {
    const p = pos.get(node.name);
    const kind = node.preview_of ? " preview" : node.transfer ? " inserted" : "";
    const g = svgEl("g", { class: "node" + kind, "data-element": node.name,
      transform: `translate(${p.x}, ${p.y})` });
    g.appendChild(svgEl("rect", { width: W, height: H, rx: 5 }));
    g.appendChild(svgEl("text", { x: 8, y: 19, "font-weight": "600" }, shorten(node.name, 27)));
    const sub = node.preview_of ? `preview of ${node.preview_of}`
      : node.inserted ? `${node.handler}: ${node.inserted}` : node.handler;
    g.appendChild(svgEl("text", { class: "handler", x: 8, y: 37 }, shorten(sub, 31)));
    g.appendChild(svgEl("title", {}, `${node.name} (${node.handler})` +
      (node.inserted ? `\ninserted: ${node.inserted}` : "") +
      (node.dispatcher ? `\n@${node.dispatcher}` : "")));
    svg.appendChild(g);
  }
  container.replaceChildren(svg);
}
