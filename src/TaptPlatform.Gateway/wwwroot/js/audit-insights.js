// TAPT Console: flag trends (per prompt configuration and vocabulary, by UTC day: flagged images by verdict as
// stacked bars, flag rate and changed-prediction rate as lines) and the activity trail (newest first, paged, export).
// Charts are inline SVG built with DOM calls (CSP: no inline styles or scripts).
import { api, el, toast, download, fmtTime } from "./console.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const VERDICTS = [["confirmed-attack", "Confirmed attack"], ["needs-follow-up", "Needs follow-up"], ["false-alarm", "False alarm"], ["unreviewed", "Unreviewed"]];
const trail = { cursor: null };
window.taptConsole = Object.assign(window.taptConsole || {}, { trendsRendered: 0, trailRows: 0 });

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** The audit filters' job and time range as query parameters (shared by the list, trends and bundles). */
export function rangeQuery() {
  const q = new URLSearchParams();
  if ($("audit-job").value) q.set("jobId", $("audit-job").value);
  if ($("audit-since").value) q.set("since", new Date($("audit-since").value).toISOString());
  if ($("audit-until").value) q.set("until", new Date($("audit-until").value).toISOString());
  return q;
}

// ---- trends -----------------------------------------------------------------------------------------------------

function trendsQuery() {
  const q = rangeQuery();
  q.delete("jobId");   // trends are per configuration and vocabulary, over every recent job
  return q;
}

async function loadTrends() {
  const trends = await api(`/api/audit/trends?${trendsQuery()}`);
  const host = $("trends-plots");
  if (trends.series.length === 0) {
    host.replaceChildren(el("p", { class: "muted", text: "No results in this range." }));
    return;
  }
  host.replaceChildren(...trends.series.map(seriesBlock));
  window.taptConsole.trendsRendered++;
}

function seriesBlock(s) {
  const t = s.total;
  const versions = `configuration v${s.configurationVersions.join(", v")} · vocabulary v${s.vocabularyVersions.join(", v")}`;
  return el("section", { class: "trend-series", "data-configuration": s.promptConfiguration, "data-vocabulary": s.vocabulary },
    el("h3", { text: `${s.promptConfiguration} × ${s.vocabulary}` }),
    el("p", { class: "muted small", text: `${versions} · ${t.images} images, ${t.flagged} flagged (${(t.flagRate * 100).toFixed(1)}%), ${t.changedPredictions} changed predictions (${(t.changedPredictionRate * 100).toFixed(1)}%)` }),
    el("figure", { class: "plot plot-wide" }, chart(s)),
    el("ul", { class: "trend-legend" },
      ...VERDICTS.map(([v, name]) => el("li", {}, el("span", { class: `swatch v-${v}` }), name)),
      el("li", {}, el("span", { class: "swatch rate-flag" }), "Flag rate"),
      el("li", {}, el("span", { class: "swatch rate-changed" }), "Changed-prediction rate")));
}

function chart(s) {
  const W = 760, H = 230, L = 44, R = 48, T = 12, B = 34;
  const days = s.days;
  const maxCount = Math.max(1, ...days.map((d) => d.flagged));
  const slot = (W - L - R) / days.length;
  const x = (i) => L + slot * i;
  const yCount = (n) => H - B - (n / maxCount) * (H - T - B);
  const yRate = (r) => H - B - r * (H - T - B);
  const root = svg("svg", { class: "chart-svg trend-chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${s.promptConfiguration} with ${s.vocabulary}: ${days.length} days, up to ${maxCount} flagged a day, flag rate up to ${(Math.max(...days.map((d) => d.flagRate)) * 100).toFixed(1)}%` });
  for (const f of [0, 0.5, 1]) {
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: yRate(f), y2: yRate(f) }),
      svg("text", { class: "tick", x: L - 6, y: yCount(maxCount * f) + 4, "text-anchor": "end" }, String(Math.round(maxCount * f))),
      svg("text", { class: "tick", x: W - R + 6, y: yRate(f) + 4 }, `${Math.round(f * 100)}%`));
  }
  days.forEach((d, i) => {
    let base = 0;
    for (const [v, name] of VERDICTS) {
      const n = d.verdicts[v] ?? 0;
      if (n === 0) continue;
      root.append(svg("rect", { class: `v-${v}`, x: x(i) + slot * 0.15, width: Math.max(1, slot * 0.7), y: yCount(base + n), height: yCount(base) - yCount(base + n) },
        svg("title", {}, `${d.day}: ${n} ${name.toLowerCase()}`)));
      base += n;
    }
  });
  const line = (key, cls) => svg("polyline", { class: cls, points: days.map((d, i) => `${(x(i) + slot / 2).toFixed(1)},${yRate(d[key]).toFixed(1)}`).join(" ") });
  root.append(line("flagRate", "rate-flag"), line("changedPredictionRate", "rate-changed"));
  const every = Math.max(1, Math.ceil(days.length / 8));
  days.forEach((d, i) => {
    if (i % every === 0 || i === days.length - 1) root.append(svg("text", { class: "tick", x: x(i) + slot / 2, y: H - B + 16, "text-anchor": "middle" }, d.day.slice(5)));
  });
  root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  return root;
}

// ---- trail ------------------------------------------------------------------------------------------------------

function trailQuery() {
  const q = new URLSearchParams();
  const kind = $("trail-kind").value.trim();
  if (kind) q.set("kind", kind);
  return q;
}

async function loadTrail(reset) {
  const q = trailQuery();
  q.set("limit", "50");
  if (!reset && trail.cursor) q.set("cursor", trail.cursor);
  const page = await api(`/api/trail?${q}`);
  const rows = page.items.map((e) => el("tr", { "data-kind": e.kind },
    el("td", { text: fmtTime(e.at), title: e.at }),
    el("td", { class: "mono", text: e.actor }),
    el("td", { text: e.kind }),
    el("td", { class: "mono small", text: Object.entries(e.target).map(([k, v]) => `${k}=${v}`).join(" ") })));
  const body = $("trail-table").tBodies[0];
  if (reset) body.replaceChildren(...rows); else body.append(...rows);
  trail.cursor = page.nextCursor;
  $("trail-more").hidden = !page.nextCursor;
  window.taptConsole.trailRows = body.rows.length;
}

export function wireInsights() {
  const fail = (e) => toast(e.message, "error");
  $("trends-card").addEventListener("toggle", () => { if ($("trends-card").open) loadTrends().catch(fail); });
  $("trends-refresh").addEventListener("click", () => loadTrends().catch(fail));
  $("trends-json").addEventListener("click", () => download(`/api/audit/trends?${trendsQuery()}`, "flag-trends.json").catch(fail));
  $("trail-card").addEventListener("toggle", () => { if ($("trail-card").open) loadTrail(true).catch(fail); });
  $("trail-filters").addEventListener("submit", (e) => { e.preventDefault(); loadTrail(true).catch(fail); });
  $("trail-more").addEventListener("click", () => loadTrail(false).catch(fail));
  $("trail-export").addEventListener("click", () => download(`/api/trail/export?${trailQuery()}`, "trail.jsonl").catch(fail));
}
