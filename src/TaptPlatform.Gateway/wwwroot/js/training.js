// TAPT Console: prompt training jobs (create with labelled images, list, live training curve, report, use the artifact).
// Plain ES module sharing console.js's helpers; the chart is inline SVG built with DOM calls (CSP: no inline styles or scripts).
import { sections, api, el, toast, download, connection, fmtTime, setBusy, showError, uploadLabelled } from "./console.js";
import { readLabelledDrop } from "./labelled-drop.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const tr = { files: [], labels: [], current: null, wired: false };
window.taptConsole = Object.assign(window.taptConsole || {}, { trainingEpochsApplied: 0 });

const pct1 = (p) => (p === null || p === undefined || Number.isNaN(p) ? "–" : `${(p * 100).toFixed(1)}%`);
const isImage = (f) => f.type.startsWith("image/") || /\.(png|jpe?g|webp|bmp|gif)$/i.test(f.name);

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

async function show(id) {
  leave();
  $("train-home").hidden = !!id;
  $("train-detail").hidden = !id;
  if (id) await open(id);
  else await Promise.all([loadForm(), loadList()]);
}

function leave() {
  const previous = tr.current;
  tr.current = null;
  if (previous) connection().then((c) => c.invoke("UnsubscribeTraining", previous.id)).catch(() => {});
}

// ---- the form ---------------------------------------------------------------------------------------------------

async function loadForm() {
  const [vocabularies, configs] = await Promise.all([api("/api/vocabularies"), api("/api/prompt-configurations")]);
  const select = $("train-vocabulary");
  const previous = select.value;
  select.replaceChildren(...vocabularies.map((v) => el("option", { value: v.name, text: `${v.name} (v${v.latestVersion}, ${v.labelCount} labels)` })));
  if (vocabularies.some((v) => v.name === previous)) select.value = previous;
  if (!$("train-model").value && configs.length) $("train-model").value = configs[0].model;
  if (!vocabularies.length) showError("train-error", new Error("Create a vocabulary first.")); else showError("train-error");
  await loadLabels();
}

async function loadLabels() {
  const name = $("train-vocabulary").value;
  tr.labels = name ? (await api(`/api/vocabularies/${encodeURIComponent(name)}`)).labels.map((l) => l.label) : [];
  $("train-label").replaceChildren(...tr.labels.map((l) => el("option", { value: l, text: l })));
  summarize();
}

function addFiles(files, label) {
  for (const file of files.filter(isImage)) tr.files.push({ file, label });
  summarize();
}

/** Dropped folders are labelled by their path (labelled-drop.js); plain files take the chosen label. */
async function readDrop(dataTransfer) {
  for (const [label, files] of await readLabelledDrop(dataTransfer, tr.labels, $("train-label").value)) addFiles(files, label);
}

function summarize() {
  const byLabel = new Map();
  for (const f of tr.files) byLabel.set(f.label, (byLabel.get(f.label) || 0) + 1);
  const n = tr.files.length;
  $("train-file-summary").textContent = n
    ? `${n} image${n === 1 ? "" : "s"} in ${byLabel.size} label${byLabel.size === 1 ? "" : "s"}: ${[...byLabel].map(([l, c]) => `${l} ${c}`).join(", ")}.`
    : "No images chosen.";
  $("train-submit").disabled = n === 0 || !$("train-vocabulary").value;
}

async function submit(event) {
  event.preventDefault();
  showError("train-error");
  const button = $("train-submit");
  setBusy(button, true, "Creating training job…");
  try {
    const created = await api("/api/prompt-trainings", { method: "POST", body: {
      vocabulary: $("train-vocabulary").value,
      model: $("train-model").value.trim(),
      artifactName: $("train-artifact").value.trim(),
      design: $("train-design").value,
      epochs: Number($("train-epochs").value),
      epsilon: Number($("train-eps").value) / 255,
      shotsPerClass: Number($("train-shots").value),
      validationFraction: Number($("train-validation").value) / 100,
      learningRate: Number($("train-lr").value),
    } });
    await uploadLabelled(`/api/prompt-trainings/${created.jobId}/images`, tr.files, button);
    tr.files = [];
    button.textContent = "Starting…";
    await api(`/api/prompt-trainings/${created.jobId}/start`, { method: "POST" });
    location.hash = `#/training/${created.jobId}`;
  } catch (e) {
    showError("train-error", e);
  } finally {
    setBusy(button, false);
    summarize();
  }
}

async function loadList() {
  const list = await api("/api/prompt-trainings?limit=50");
  $("train-table").tBodies[0].replaceChildren(...list.map((s) => el("tr", {},
    el("td", {}, el("a", { class: "job-link", href: `#/training/${s.jobId}`, text: s.name || s.jobId.slice(0, 18) + "…", title: s.jobId })),
    el("td", { class: "small", text: s.artifact ? `${s.artifact.name} v${s.artifact.version}` : `${s.request.artifactName} (${s.request.design})` }),
    el("td", {}, el("span", { class: `badge badge-${s.state}`, text: s.state })),
    el("td", { class: "small", text: `${s.epochsDone}/${s.epochsTotal}` }),
    el("td", { class: "small", text: fmtTime(s.createdAt) }))));
  $("train-empty").hidden = list.length > 0;
}

// ---- one job: live curve and report --------------------------------------------------------------------------------

async function open(id) {
  tr.current = { id, status: null };
  $("train-config-name").value = "";
  $("train-detail-id").textContent = id;
  const c = await connection();
  if (!tr.wired) {
    tr.wired = true;
    c.on("jobProgress", (p) => { if (tr.current && tr.current.id === p.jobId) applyProgress(p); });
    c.on("resync", (e) => { if (tr.current && tr.current.id === e.jobId) refresh().catch(() => {}); });
  }
  let status;
  try {
    status = await c.invoke("SubscribeTraining", id);
  } catch (e) {
    toast(`Live updates unavailable: ${e.message}`, "error");
    status = await api(`/api/prompt-trainings/${encodeURIComponent(id)}`);
  }
  if (tr.current?.id !== id) return;
  tr.current.status = status;
  render();
  $("train-detail").focus();
}

async function refresh() {
  const cur = tr.current;
  const status = await api(`/api/prompt-trainings/${encodeURIComponent(cur.id)}`);
  if (tr.current === cur) { cur.status = status; render(); }
}

/** A live event: the epoch just finished joins the curve; a gap (events coalesced) or the end reads the whole status. */
function applyProgress(p) {
  const s = tr.current.status;
  if (!s) return;
  window.taptConsole.trainingEpochsApplied++;
  if (p.epoch && p.completed === s.curve.length + 1) s.curve = [...s.curve, p.epoch];
  s.state = p.state;
  s.epochsDone = Math.max(s.epochsDone, p.completed);
  s.waiting = p.waiting;
  if (p.completed !== s.curve.length || p.state === "completed" || p.state === "cancelled") refresh().catch(() => {});
  render();
}

function render() {
  const s = tr.current.status;
  $("train-detail-title").textContent = s.name || `Prompts “${s.request.artifactName}”`;
  const badge = $("train-state");
  badge.textContent = s.state;
  badge.className = `badge badge-${s.state}`;
  $("train-progress").max = Math.max(1, s.epochsTotal);
  $("train-progress").value = s.curve.length;
  $("train-progress-text").textContent = `${s.curve.length} / ${s.epochsTotal} epochs (adversarial prompts, then clean prompts)`;
  $("train-waiting").textContent = s.error || s.waiting || "";
  $("train-cancel").hidden = !(s.state === "open" || s.state === "running");
  $("train-configure-box").hidden = !(s.state === "completed" && s.artifact);
  if (s.artifact && !$("train-config-name").value) $("train-config-name").value = s.artifact.name;
  const rows = s.curve.map((e) => el("tr", {},
    el("td", { text: `${e.prompts} ${e.epoch}` }), el("td", { class: "num", text: e.loss.toFixed(4) }),
    el("td", { class: "num", text: pct1(e.trainCleanAccuracy) }), el("td", { class: "num", text: pct1(e.validation.clean) }),
    el("td", { class: "num", text: e.prompts === "adversarial" ? pct1(e.validation.robust) : "–" }), el("td", { class: "num", text: `${e.seconds.toFixed(1)} s` })));
  const compare = (label, a) => el("tr", {}, el("th", { scope: "row", text: label }), el("td", { class: "num", text: pct1(a?.clean) }), el("td", { class: "num", text: pct1(a?.robust) }));
  $("train-report").replaceChildren(
    el("section", { class: "report-block", "aria-labelledby": "train-curve-title" },
      el("h3", { id: "train-curve-title", text: "Training curve" }),
      el("figure", { class: "plot plot-wide" }, chart(s.curve, s.epochsTotal),
        el("figcaption", {}, legend("line-clip", "held-out clean accuracy"), legend("line-tapt", "held-out robust accuracy (PGD-10)"), legend("line-apt", "loss (right axis)")))),
    el("div", { class: "table-wrap" }, el("table", { class: "table table-compact", id: "train-curve-table" },
      el("thead", {}, el("tr", {}, ...["Epoch", "Loss", "Train clean", "Held-out clean", "Held-out robust", "Time"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows))),
    el("section", { class: "report-block", "aria-labelledby": "train-compare-title" },
      el("h3", { id: "train-compare-title", text: `Held-out accuracy at ε = ${(s.request.epsilon * 255).toFixed(2)}/255 (${s.validationImages} images)` }),
      el("table", { class: "table table-compact", id: "train-compare" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Prompts" }), el("th", { scope: "col", text: "Clean" }), el("th", { scope: "col", text: "Robust" }))),
        el("tbody", {}, compare("Before: the model's default artifact", s.before), compare(s.artifact ? `After: ${s.artifact.name} v${s.artifact.version}` : "After", s.after)))));
}

function legend(cls, text) { return el("span", { class: "legend-item" }, el("span", { class: `key-swatch ${cls}`, "aria-hidden": "true" }), text); }

/** Held-out accuracy (left axis, 0–100%) and loss (right axis) per epoch, over all the run's epochs. */
function chart(curve, total) {
  const W = 640, H = 240, L = 46, R = 46, T = 12, B = 30;
  const x = (i) => L + (total <= 1 ? 0 : (i / (total - 1)) * (W - L - R));
  const y = (v) => T + (1 - v) * (H - T - B);
  const maxLoss = Math.max(1e-6, ...curve.map((e) => e.loss));
  const yl = (v) => T + (1 - v / maxLoss) * (H - T - B);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "train-chart-title", id: "train-chart", class: "chart-svg" },
    svg("title", { id: "train-chart-title" }, `Training curve: ${curve.length} of ${total} epochs`));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(t), y2: y(t) }), svg("text", { class: "tick", x: L - 6, y: y(t) + 4, "text-anchor": "end" }, `${t * 100}%`),
      svg("text", { class: "tick", x: W - R + 6, y: y(t) + 4 }, (t * maxLoss).toFixed(2)));
  }
  root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  curve.forEach((e, i) => root.append(svg("text", { class: "tick", x: x(i), y: H - B + 16, "text-anchor": "middle" }, `${e.prompts[0]}${e.epoch}`)));
  const line = (cls, pick, scale) => {
    const pts = curve.map((e, i) => [i, pick(e)]).filter(([, v]) => v !== null && v !== undefined && Number.isFinite(v));
    if (pts.length > 1) root.append(svg("polyline", { class: `curve ${cls}`, points: pts.map(([i, v]) => `${x(i)},${scale(v)}`).join(" ") }));
    for (const [i, v] of pts) root.append(svg("circle", { class: `dot ${cls}`, cx: x(i), cy: scale(v), r: 3.5 }));
  };
  line("line-clip", (e) => e.validation.clean, y);
  line("line-tapt", (e) => (e.prompts === "adversarial" ? e.validation.robust : null), y);
  line("line-apt", (e) => e.loss, yl);
  return root;
}

async function cancel() {
  await api(`/api/prompt-trainings/${encodeURIComponent(tr.current.id)}/cancel`, { method: "POST" });
  await refresh();
}

async function configure() {
  const name = $("train-config-name").value.trim() || tr.current.status.artifact.name;
  const c = await api(`/api/prompt-trainings/${encodeURIComponent(tr.current.id)}/prompt-configuration`, { method: "POST", body: { name } });
  toast(`Prompt configuration “${c.name}” v${c.version} uses ${c.promptArtifact} v${c.promptArtifactVersion}.`);
}

function wire() {
  $("train-form").addEventListener("submit", submit);
  $("train-vocabulary").addEventListener("change", () => loadLabels().catch((e) => toast(e.message, "error")));
  $("train-refresh").addEventListener("click", () => loadList().catch((e) => toast(e.message, "error")));
  const zone = $("train-dropzone");
  const input = $("train-file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("dragging"); readDrop(e.dataTransfer).catch((x) => toast(x.message, "error")); });
  input.addEventListener("change", () => { addFiles([...input.files], $("train-label").value); input.value = ""; });
  $("train-cancel").addEventListener("click", () => cancel().catch((e) => toast(e.message, "error")));
  $("train-configure").addEventListener("click", () => configure().catch((e) => toast(e.message, "error")));
  $("train-download").addEventListener("click", () =>
    download(`/api/prompt-trainings/${encodeURIComponent(tr.current.id)}/report`, `prompt-training-${tr.current.id}.json`).catch((e) => toast(e.message, "error")));
}

wire();
sections.training = async (id) => show(id);
