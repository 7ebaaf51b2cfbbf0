// TAPT Console: robustness evaluations (list, create with labelled images, live status, report page, artifact browser).
// Over 400 lines: one page with five views (list, form, live status, report, artifacts); the attack-specific parts are
// in evaluation-attacks.js. Plain ES module sharing console.js's helpers; charts are inline SVG built with DOM calls (CSP: no inline styles or scripts).
import { sections, api, el, toast, download, authorizedUrl, connection, fmtTime, fmtEta, setBusy, showError, uploadLabelled } from "./console.js";
import { attackFields, attackFacts, checksBlock, stagesBlock, wireAttackFields } from "./evaluation-attacks.js";
import { readLabelledDrop } from "./labelled-drop.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const METHODS = [["clip", "CLIP"], ["apt", "APT prompts"], ["tapt", "TAPT"]];
const PAGE = 8;
const ev = {
  files: [],            // { file, label }
  labels: [],           // labels of the chosen vocabulary
  current: null,        // { id, status, report, artifacts:Set, eps, page, progress, lastReport }
  handlersWired: false,
};
const stats = { evalProgressApplied: 0, evalReportsRendered: 0, evalSnapshots: 0 };
window.taptConsole = Object.assign(window.taptConsole || {}, stats);
const bump = (k) => { window.taptConsole[k] = (window.taptConsole[k] || 0) + 1; };

const pct1 = (p) => (p === null || p === undefined ? "–" : `${(p * 100).toFixed(1)}%`);
const eps255 = (e) => { const v = e * 255; return Math.abs(v - Math.round(v)) < 1e-6 ? String(Math.round(v)) : v.toFixed(2); };
const pad5 = (i) => String(i).padStart(5, "0");

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---- routing ----------------------------------------------------------------------------------------------------

async function show(id) {
  if (id) {
    $("eval-home").hidden = true;
    await openEvaluation(id);
  } else {
    leave();
    $("eval-home").hidden = false;
    $("eval-detail").hidden = true;
    await Promise.all([loadForm(), loadList()]);
  }
}

function leave() {
  const previous = ev.current;
  ev.current = null;
  if (previous) connection().then((c) => c.invoke("UnsubscribeEvaluation", previous.id)).catch(() => {});
}

// ---- the form -----------------------------------------------------------------------------------------------------

async function loadForm() {
  const [vocabularies, configs] = await Promise.all([api("/api/vocabularies"), api("/api/prompt-configurations")]);
  const fill = (select, items, text) => {
    const previous = select.value;
    select.replaceChildren(...items.map((i) => el("option", { value: i.name, text: text(i) })));
    if (items.some((i) => i.name === previous)) select.value = previous;
  };
  fill($("eval-vocabulary"), vocabularies, (v) => `${v.name} (v${v.latestVersion}, ${v.labelCount} labels)`);
  fill($("eval-config"), configs, (c) => `${c.name} (v${c.version}, ${c.model})`);
  if (!vocabularies.length || !configs.length) showError("eval-error", new Error("Create a vocabulary and a prompt configuration first."));
  else showError("eval-error");
  await loadLabels();
}

async function loadLabels() {
  const name = $("eval-vocabulary").value;
  ev.labels = name ? (await api(`/api/vocabularies/${encodeURIComponent(name)}`)).labels.map((l) => l.label) : [];
  const select = $("eval-label");
  const previous = select.value;
  select.replaceChildren(...ev.labels.map((l) => el("option", { value: l, text: l })));
  if (ev.labels.includes(previous)) select.value = previous;
  summarize();
}

const isImage = (f) => f.type.startsWith("image/") || /\.(png|jpe?g|webp|bmp|gif)$/i.test(f.name);

function addFiles(files, label) {
  const images = files.filter(isImage);
  if (files.length > images.length) toast(`${files.length - images.length} file(s) skipped: not images.`);
  for (const file of images) ev.files.push({ file, label });
  summarize();
}

/** Dropped folders are labelled by their path (labelled-drop.js); plain files take the chosen label. */
async function readDrop(dataTransfer) {
  for (const [label, files] of await readLabelledDrop(dataTransfer, ev.labels, $("eval-label").value)) addFiles(files, label);
}

function summarize() {
  const byLabel = new Map();
  for (const f of ev.files) byLabel.set(f.label, (byLabel.get(f.label) || 0) + 1);
  $("eval-file-labels").replaceChildren(...[...byLabel].map(([l, n]) => el("li", { text: `${l}: ${n}` })));
  const n = ev.files.length;
  $("eval-file-summary").textContent = n ? `${n} image${n === 1 ? "" : "s"} chosen in ${byLabel.size} label${byLabel.size === 1 ? "" : "s"}.` : "No images chosen.";
  $("eval-submit").disabled = n === 0 || !$("eval-vocabulary").value || !$("eval-config").value;
  $("eval-clear").disabled = n === 0;
}

function parseEpsilons(text) {
  const values = text.split(/[,\s]+/).filter(Boolean).map((t) => {
    const v = t.includes("/") ? Number(t.split("/")[0]) / Number(t.split("/")[1]) * 255 : Number(t);
    if (!Number.isFinite(v) || v < 0 || v > 255) throw new Error(`“${t}” is not an ε in 1/255 units (0 to 255).`);
    return v / 255;
  });
  if (!values.length) throw new Error("Give at least one ε.");
  return values;
}

async function submit(event) {
  event.preventDefault();
  showError("eval-error");
  if (!ev.files.length) return;
  const button = $("eval-submit");
  setBusy(button, true, "Creating evaluation…");
  try {
    const body = {
      vocabulary: $("eval-vocabulary").value,
      promptConfiguration: $("eval-config").value,
      ...attackFields(),
      epsilons: parseEpsilons($("eval-eps").value),
      steps: Number($("eval-steps").value || 10),
      protocol: $("eval-protocol").value,
      seed: Number($("eval-seed").value || 0),
      name: $("eval-name").value.trim() || null,
    };
    const created = await api("/api/evaluations", { method: "POST", body });
    await uploadLabelled(`/api/evaluations/${created.jobId}/images`, ev.files, button);
    ev.files = [];
    summarize();
    button.textContent = "Starting…";
    await api(`/api/evaluations/${created.jobId}/start`, { method: "POST" });
    location.hash = `#/evaluations/${created.jobId}`;
  } catch (e) {
    showError("eval-error", e);
  } finally {
    setBusy(button, false);
    summarize();
  }
}

async function loadList() {
  const list = await api("/api/evaluations?limit=50");
  $("eval-table").tBodies[0].replaceChildren(...list.map((s) => el("tr", {},
    el("td", {}, el("a", { class: "job-link", href: `#/evaluations/${s.jobId}`, text: s.name || s.jobId.slice(0, 17) + "…", title: s.jobId })),
    el("td", { class: "small", text: `${s.request.attack.toUpperCase()} · ε ${s.request.epsilons.map(eps255).join(", ")}/255 · ${s.request.protocol}` }),
    el("td", {}, el("span", { class: `badge badge-${s.state}`, text: s.state })),
    el("td", {}, el("div", { class: "mini-progress" },
      el("progress", { max: Math.max(1, s.outcomesTotal), value: s.outcomesRecorded, "aria-label": `${s.outcomesRecorded} of ${s.outcomesTotal} outcomes` }),
      el("span", { class: "small muted", text: `${s.outcomesRecorded}/${s.outcomesTotal}` }))),
    el("td", { class: "small", text: fmtTime(s.createdAt) }))));
  $("eval-empty").hidden = list.length > 0;
}

// ---- one evaluation: live status and the report ---------------------------------------------------------------------

async function wireHub() {
  const c = await connection();
  if (ev.handlersWired) return c;
  ev.handlersWired = true;
  c.on("jobProgress", (p) => { if (ev.current && ev.current.id === p.jobId) applyProgress(p); });
  c.on("resync", (e) => { if (ev.current && ev.current.id === e.jobId) subscribe(e.jobId).catch(() => {}); });
  c.onreconnected(() => { if (ev.current) subscribe(ev.current.id).catch(() => {}); });
  return c;
}

async function subscribe(id) {
  const c = await wireHub();
  const snapshot = await c.invoke("SubscribeEvaluation", id);
  if (!ev.current || ev.current.id !== id) return;
  bump("evalSnapshots");
  if (snapshot.evaluation) ev.current.status = snapshot.evaluation;
  applyProgress({ jobId: id, state: snapshot.job.state, total: snapshot.job.counts.total, completed: snapshot.job.counts.completed,
    etaSeconds: snapshot.job.etaSeconds, waiting: snapshot.job.waiting, snapshot: true });
}

async function openEvaluation(id) {
  if (ev.current?.id !== id) leave();
  ev.current = { id, status: null, report: null, artifacts: new Set(), eps: 0, page: 0, progress: null, lastReport: 0, reportTimer: 0 };
  const detail = $("eval-detail");
  detail.hidden = false;
  $("eval-detail-id").textContent = id;
  $("eval-report").replaceChildren(el("p", { class: "muted", text: "Loading the report…" }));
  const status = await api(`/api/evaluations/${encodeURIComponent(id)}`);
  if (ev.current?.id !== id) return;
  ev.current.status = status;
  $("eval-detail-title").textContent = status.name || "Evaluation";
  $("eval-start").hidden = status.state !== "open";
  $("eval-cancel").hidden = !cancellable(status.state);
  try {
    await subscribe(id);
  } catch (e) {
    toast(`Live updates unavailable: ${e.message}`, "error");
    applyProgress({ jobId: id, state: status.state, total: status.outcomesTotal, completed: status.outcomesRecorded, waiting: status.error || status.waiting });
  }
  await loadReport();
  detail.focus();
}

/** An open or running evaluation can be cancelled (the server keeps the outcomes recorded so far). */
const cancellable = (state) => state === "open" || state === "running";

function applyProgress(p) {
  const cur = ev.current;
  if (!cur) return;
  const final = p.state === "completed" || p.state === "cancelled";
  const wasFinal = cur.progress && (cur.progress.state === "completed" || cur.progress.state === "cancelled");
  if (cur.progress && !final && (wasFinal || cur.progress.completed > p.completed)) return;
  cur.progress = p;
  const bar = $("eval-progress");
  bar.max = Math.max(1, p.total);
  bar.value = p.completed;
  $("eval-progress-text").textContent = `${p.completed} / ${p.total} outcomes`;
  $("eval-eta").textContent = p.state === "running" ? fmtEta(p.etaSeconds) : "";
  $("eval-waiting").textContent = p.waiting || "";
  const badge = $("eval-state");
  badge.textContent = p.state;
  badge.className = `badge badge-${p.state}`;
  $("eval-start").hidden = p.state !== "open";
  $("eval-cancel").hidden = !cancellable(p.state);
  if (!p.snapshot) bump("evalProgressApplied");
  // The report follows the progress: at most every 3 s while running, and once at the end.
  if (final && !wasFinal && cur.report) loadReport().catch(() => {});
  else if (p.state === "running" && !p.snapshot && !cur.reportTimer && cur.report) {
    cur.reportTimer = setTimeout(() => { cur.reportTimer = 0; if (ev.current === cur) loadReport().catch(() => {}); }, Math.max(0, 3000 - (Date.now() - cur.lastReport)));
  }
}

async function loadReport() {
  const cur = ev.current;
  if (!cur) return;
  cur.lastReport = Date.now();
  const [report, artifacts] = await Promise.all([
    api(`/api/evaluations/${encodeURIComponent(cur.id)}/report`),
    api(`/api/evaluations/${encodeURIComponent(cur.id)}/artifacts`),
  ]);
  if (ev.current !== cur) return;
  cur.report = typeof report === "string" ? JSON.parse(report) : report;
  cur.artifacts = new Set(artifacts.map((a) => a.name));
  renderReport();
}

// ---- the report page ------------------------------------------------------------------------------------------------

function renderReport() {
  const cur = ev.current;
  const r = cur.report;
  const root = $("eval-report");
  const eps = r.attack.epsilons;
  if (cur.eps >= eps.length) cur.eps = 0;
  const k = cur.eps;
  const result = r.results[k];
  const children = [];

  children.push(el("section", { class: "report-block", "aria-labelledby": "rep-summary-title" },
    el("h3", { id: "rep-summary-title", text: "Summary" }),
    el("dl", { class: "facts" },
      fact("Attack", `${r.attack.name || r.attack.kind.toUpperCase()} (${r.attack.kind})`),
      fact("ε", eps.map((e) => `${eps255(e)}/255`).join(", ")),
      fact("Steps · step size", `${r.attack.steps} · ${eps255(r.attack.stepSize)}/255`),
      ...attackFacts(r, fact),
      fact("Protocol", `${r.attack.protocol}${r.attack.protocol === "adaptive" ? ` (EOT ${r.attack.eot})` : ""}`),
      fact("Seed", String(r.attack.seed)),
      fact("Images", String(r.n)),
      fact("Cost", r.cost.secondsPerImage === null || r.cost.secondsPerImage === undefined ? "–" : `${r.cost.secondsPerImage.toFixed(3)} s per image and ε`),
      fact("State", r.state + (r.error ? ` (${r.error})` : "")))));

  if (eps.length > 1) {
    const select = el("select", { id: "rep-eps", onchange: (e) => { cur.eps = Number(e.target.value); cur.page = 0; renderReport(); } },
      eps.map((e, i) => el("option", { value: String(i), text: `ε = ${eps255(e)}/255`, selected: i === k })));
    children.push(el("div", { class: "field field-inline rep-eps" }, el("label", { for: "rep-eps", text: "Show ε" }), select));
  }

  children.push(el("section", { class: "report-block", "aria-labelledby": "rep-acc-title" },
    el("h3", { id: "rep-acc-title", text: `Accuracy at ε = ${eps255(eps[k])}/255 (n = ${result.n}, ${r.confidence})` }),
    el("div", { class: "report-grid" },
      el("div", { class: "table-wrap" }, accuracyTable(result)),
      el("figure", { class: "plot" }, barChart(result, eps[k]),
        el("figcaption", {}, legendItem("bar-clean", "clean"), legendItem("bar-robust", "under attack"), el("span", { class: "muted", text: "whiskers: 95% CI" }))))));

  const stages = stagesBlock(result, eps[k]);
  if (stages) children.push(stages);
  const checks = checksBlock(r, eps[k]);
  if (checks) children.push(checks);

  if (eps.length > 1) {
    children.push(el("section", { class: "report-block", "aria-labelledby": "rep-curve-title" },
      el("h3", { id: "rep-curve-title", text: "Robust accuracy versus ε" }),
      el("figure", { class: "plot plot-wide" }, curveChart(r),
        el("figcaption", {}, ...METHODS.map(([m, name]) => legendItem(`line-${m}`, name))))));
  }

  children.push(el("section", { class: "report-block", "aria-labelledby": "rep-labels-title" },
    el("h3", { id: "rep-labels-title", text: `Per label at ε = ${eps255(eps[k])}/255` }),
    el("div", { class: "table-wrap" }, perLabelTable(result))));

  const p = r.pinned;
  children.push(el("section", { class: "report-block", "aria-labelledby": "rep-pinned-title" },
    el("h3", { id: "rep-pinned-title", text: "Pinned versions and checksums" }),
    el("dl", { class: "facts facts-mono", id: "rep-pinned" },
      fact("Model", `${p.model} · ${p.modelChecksum || "–"}`),
      fact("Prompt artifact", `${p.promptArtifact || "–"} (format v${p.promptArtifactFormatVersion ?? "–"})`),
      fact("Prompt artifact SHA-256", p.promptArtifactSha256 || "–"),
      fact("Prompt configuration", `${p.promptConfiguration} v${p.promptConfigurationVersion}${p.design ? ` · ${p.design}` : ""}`),
      fact("TAPT", p.tapt ? `${p.tapt.views} views · ${p.tapt.steps} steps · lr ${p.tapt.lr}` : "–"),
      fact("Vocabulary", `${p.vocabulary} v${p.vocabularyVersion} (${p.labels.length} labels)`),
      fact("Engine", p.engineVersion || "–"))));

  children.push(artifactBrowser(r, k));
  root.replaceChildren(...children);
  bump("evalReportsRendered");
}

function fact(term, value) { return el("div", {}, el("dt", { text: term }), el("dd", { text: value })); }

function legendItem(cls, text) { return el("span", { class: "legend-item" }, el("span", { class: `key-swatch ${cls}`, "aria-hidden": "true" }), text); }

const ci = (a) => (a.ci95 ? `${pct1(a.ci95[0])} – ${pct1(a.ci95[1])}` : "–");

function accuracyTable(result) {
  return el("table", { class: "table table-compact", id: "rep-accuracy" },
    el("caption", { class: "visually-hidden", text: "Clean and robust accuracy per method with 95% confidence intervals" }),
    el("thead", {}, el("tr", {}, ["Method", "Clean", "Clean 95% CI", "Robust", "Robust 95% CI", "Robust correct"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, METHODS.map(([m, name]) => el("tr", {},
      el("th", { scope: "row", text: name }),
      el("td", { class: "num", text: pct1(result.clean[m].accuracy) }),
      el("td", { class: "num muted", text: ci(result.clean[m]) }),
      el("td", { class: "num", text: pct1(result.robust[m].accuracy) }),
      el("td", { class: "num muted", text: ci(result.robust[m]) }),
      el("td", { class: "num", text: `${result.robust[m].correct} / ${result.robust[m].n}` })))));
}

function perLabelTable(result) {
  return el("table", { class: "table table-compact", id: "rep-per-label" },
    el("caption", { class: "visually-hidden", text: "Clean and robust accuracy per label and method" }),
    el("thead", {},
      el("tr", {}, el("th", { scope: "col", rowspan: "2", text: "Label" }), el("th", { scope: "col", rowspan: "2", text: "n" }),
        el("th", { scope: "colgroup", colspan: "3", text: "Clean" }), el("th", { scope: "colgroup", colspan: "3", text: "Robust" })),
      el("tr", {}, [...METHODS, ...METHODS].map(([, name]) => el("th", { scope: "col", text: name })))),
    el("tbody", {}, result.perLabel.map((l) => el("tr", {},
      el("th", { scope: "row", text: l.label }),
      el("td", { class: "num", text: String(l.n) }),
      ...METHODS.map(([m]) => el("td", { class: "num", text: pct1(l.clean[m].accuracy), title: ci(l.clean[m]) })),
      ...METHODS.map(([m]) => el("td", { class: "num", text: pct1(l.robust[m].accuracy), title: ci(l.robust[m]) }))))));
}

/** Grouped bars (clean and robust per method) with 95% CI whiskers. */
function barChart(result, epsilon) {
  const W = 560, H = 260, L = 46, R = 12, T = 14, B = 34;
  const y = (v) => T + (1 - v) * (H - T - B);
  const desc = METHODS.map(([m, name]) => `${name}: clean ${pct1(result.clean[m].accuracy)}, robust ${pct1(result.robust[m].accuracy)}`).join("; ");
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "rep-bars-title rep-bars-desc", id: "rep-bars", class: "chart-svg" },
    svg("title", { id: "rep-bars-title" }, `Accuracy per method at ε = ${eps255(epsilon)}/255`),
    svg("desc", { id: "rep-bars-desc" }, desc));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(t), y2: y(t) }),
      svg("text", { class: "tick", x: L - 6, y: y(t) + 4, "text-anchor": "end" }, `${t * 100}%`));
  }
  const groupW = (W - L - R) / METHODS.length;
  const barW = Math.min(56, groupW / 3);
  METHODS.forEach(([m, name], g) => {
    const cx = L + groupW * (g + 0.5);
    [["clean", -1], ["robust", 1]].forEach(([kind, side]) => {
      const a = result[kind][m];
      const x = cx + (side < 0 ? -barW - 3 : 3);
      const v = a.accuracy ?? 0;
      chart.append(svg("rect", { class: `bar bar-${kind === "clean" ? "clean" : "robust"}`, x, y: y(v), width: barW, height: Math.max(0, y(0) - y(v)) },
        svg("title", {}, `${name} ${kind}: ${pct1(a.accuracy)} (95% CI ${ci(a)})`)));
      if (a.ci95) {
        const mx = x + barW / 2;
        chart.append(svg("g", { class: "whisker" },
          svg("line", { x1: mx, x2: mx, y1: y(a.ci95[0]), y2: y(a.ci95[1]) }),
          svg("line", { x1: mx - 6, x2: mx + 6, y1: y(a.ci95[0]), y2: y(a.ci95[0]) }),
          svg("line", { x1: mx - 6, x2: mx + 6, y1: y(a.ci95[1]), y2: y(a.ci95[1]) })));
      }
    });
    chart.append(svg("text", { class: "axis-label", x: cx, y: H - 10, "text-anchor": "middle" }, name));
  });
  chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  return chart;
}

/** Robust accuracy versus ε (in 1/255), one line per method. */
function curveChart(r) {
  const W = 560, H = 260, L = 46, R = 16, T = 14, B = 40;
  const xs = r.curve.map((c) => c.epsilon * 255);
  const xMax = Math.max(...xs, 1e-9), xMin = Math.min(0, ...xs);
  const x = (v) => L + (v - xMin) / (xMax - xMin || 1) * (W - L - R);
  const y = (v) => T + (1 - v) * (H - T - B);
  const desc = METHODS.map(([m, name]) => `${name}: ${r.curve.map((c) => `${eps255(c.epsilon)}/255 → ${pct1(c[m])}`).join(", ")}`).join("; ");
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "rep-curve-svg-title rep-curve-desc", id: "rep-curve", class: "chart-svg" },
    svg("title", { id: "rep-curve-svg-title" }, "Robust accuracy versus ε"),
    svg("desc", { id: "rep-curve-desc" }, desc));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(t), y2: y(t) }),
      svg("text", { class: "tick", x: L - 6, y: y(t) + 4, "text-anchor": "end" }, `${t * 100}%`));
  }
  for (const c of r.curve) {
    chart.append(svg("text", { class: "tick", x: x(c.epsilon * 255), y: H - B + 16, "text-anchor": "middle" }, eps255(c.epsilon)));
  }
  chart.append(svg("text", { class: "axis-label", x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "ε (× 1/255)"),
    svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  for (const [m, name] of METHODS) {
    const points = r.curve.filter((c) => c[m] !== null && c[m] !== undefined);
    chart.append(svg("polyline", { class: `curve line-${m}`, points: points.map((c) => `${x(c.epsilon * 255).toFixed(1)},${y(c[m]).toFixed(1)}`).join(" ") }));
    for (const c of points) chart.append(svg("circle", { class: `dot line-${m}`, cx: x(c.epsilon * 255), cy: y(c[m]), r: 4 },
      svg("title", {}, `${name} at ${eps255(c.epsilon)}/255: ${pct1(c[m])}`)));
  }
  return chart;
}

// ---- the artifact browser -------------------------------------------------------------------------------------------

function artifactBrowser(r, k) {
  const cur = ev.current;
  const total = r.images.length;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  if (cur.page >= pages) cur.page = 0;
  const from = cur.page * PAGE;
  const list = el("ol", { class: "artifact-list", id: "artifact-list", start: String(from + 1) });
  for (const image of r.images.slice(from, from + PAGE)) list.append(artifactItem(r, k, image));
  const nav = el("div", { class: "actions pager" },
    el("button", { type: "button", class: "btn btn-ghost btn-small", text: "Previous", disabled: cur.page === 0, onclick: () => { cur.page--; renderReport(); } }),
    el("span", { class: "small muted", text: `Images ${total ? from + 1 : 0}–${Math.min(total, from + PAGE)} of ${total}` }),
    el("button", { type: "button", class: "btn btn-ghost btn-small", text: "Next", disabled: cur.page >= pages - 1, onclick: () => { cur.page++; renderReport(); } }));
  return el("section", { class: "report-block", "aria-labelledby": "rep-artifacts-title" },
    el("h3", { id: "rep-artifacts-title", text: `Adversarial artifacts at ε = ${eps255(r.attack.epsilons[k])}/255` }),
    el("p", { class: "hint", text: "Clean original, the adversarial image made against each method, and the perturbation amplified to be visible." }),
    nav, list);
}

function artifactItem(r, k, image) {
  const cur = ev.current;
  const base = `adversarial/eps${k}/${pad5(image.index)}`;
  const has = (file) => cur.artifacts.has(`jobs/${cur.id}/${base}/${file}`);
  const outcome = image.outcomes[k];
  const figures = [["clean.png", "Clean"], ["clip.png", "Adversarial vs CLIP"], ["apt.png", "Adversarial vs APT"], ["tapt.png", "Adversarial vs TAPT"],
    ["perturbation-clip.png", "Perturbation (CLIP)"], ["perturbation-apt.png", "Perturbation (APT)"], ["perturbation-tapt.png", "Perturbation (TAPT)"]]
    .filter(([file]) => has(file))
    .map(([file, caption]) => {
      const img = el("img", { class: "artifact-img", alt: `${caption} of ${image.name}`, width: "112", height: "112", "data-file": file });
      authorizedUrl(`/api/evaluations/${encodeURIComponent(cur.id)}/artifacts/${base}/${file}`).then((u) => { img.src = u; }).catch(() => { img.alt = `${caption}: not available`; });
      return el("figure", { class: "artifact-fig" }, img, el("figcaption", { text: caption }));
    });
  const rows = outcome ? METHODS.map(([m, name]) => {
    const clean = outcome[`${m}Clean`], robust = outcome[`${m}Robust`];
    return el("tr", {},
      el("th", { scope: "row", text: name }),
      verdictCell(clean, image.label), verdictCell(robust, image.label));
  }) : [el("tr", {}, el("td", { colspan: "3", class: "muted", text: "Not evaluated yet." }))];
  return el("li", { class: "artifact-item", "data-index": String(image.index) },
    el("div", { class: "artifact-head" }, el("strong", { text: image.name }), el("span", { class: "muted small", text: ` · label ${image.label ?? "–"} · #${image.index}` }),
      el("button", { type: "button", class: "btn-link small", text: "outcome.json", onclick: () => download(`/api/evaluations/${encodeURIComponent(cur.id)}/artifacts/${base}/outcome.json`, `${cur.id}-eps${k}-${pad5(image.index)}-outcome.json`).catch((e) => toast(e.message, "error")) })),
    el("div", { class: "artifact-row" },
      el("div", { class: "artifact-figs" }, figures.length ? figures : el("p", { class: "muted small", text: "No artifacts stored yet." })),
      el("table", { class: "table table-compact outcome-table" },
        el("caption", { class: "visually-hidden", text: `Predictions for ${image.name}` }),
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Method" }), el("th", { scope: "col", text: "Clean" }), el("th", { scope: "col", text: "Under attack" }))),
        el("tbody", {}, rows))));
}

function verdictCell(prediction, label) {
  const ok = prediction === label;
  return el("td", { class: ok ? "verdict-ok" : "verdict-bad" }, el("span", { "aria-hidden": "true", text: ok ? "✓ " : "✗ " }),
    el("span", { class: "visually-hidden", text: ok ? "correct: " : "wrong: " }), prediction ?? "–");
}

// ---- wiring -------------------------------------------------------------------------------------------------------

function wire() {
  $("eval-form").addEventListener("submit", submit);
  wireAttackFields();
  $("eval-vocabulary").addEventListener("change", () => loadLabels().catch((e) => toast(e.message, "error")));
  $("eval-config").addEventListener("change", summarize);
  $("eval-refresh").addEventListener("click", () => loadList().catch((e) => toast(e.message, "error")));
  $("eval-clear").addEventListener("click", () => { ev.files = []; summarize(); });
  $("eval-start").addEventListener("click", async () => {
    if (!ev.current) return;
    try { await api(`/api/evaluations/${ev.current.id}/start`, { method: "POST" }); } catch (e) { toast(e.message, "error"); }
  });
  $("eval-cancel").addEventListener("click", async () => {
    const cur = ev.current;
    if (!cur) return;
    try {
      const s = await api(`/api/evaluations/${encodeURIComponent(cur.id)}/cancel`, { method: "POST" });
      if (ev.current === cur) applyProgress({ jobId: s.jobId, state: s.state, total: s.outcomesTotal, completed: s.outcomesRecorded, waiting: s.error || s.waiting });
    } catch (e) { toast(e.message, "error"); }
  });
  $("eval-download").addEventListener("click", () => ev.current && download(`/api/evaluations/${ev.current.id}/report/download`, `robustness-report-${ev.current.id}.json`).catch((e) => toast(e.message, "error")));
  const zone = $("eval-dropzone");
  const input = $("eval-file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { addFiles([...input.files], $("eval-label").value); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragover"); });
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.remove("dragover"); });
  zone.addEventListener("drop", (e) => { if (e.dataTransfer) readDrop(e.dataTransfer).catch((x) => toast(x.message, "error")); });
}

wire();
sections.evaluations = async (id) => show(id);
// console.js routed before this module registered: show the evaluations now if the page opened on them.
if (location.hash.startsWith("#/evaluations") && !$("view-evaluations").hidden) show(location.hash.split("/")[2] ? decodeURIComponent(location.hash.split("/")[2]) : null).catch((e) => toast(e.message, "error"));
