// TAPT Console: plain ES module, no build step. Talks to the gateway's HTTP API (X-Api-Key) and its SignalR hub.
const KEY_STORAGE = "tapt.apiKey";
const UPLOAD_BATCH = 50;          // images per upload request

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  tenant: null,
  files: [],
  connection: null,
  live: null,          // the job shown live: { jobId, labels, tiles: Map(index → tile), results: Map, progress }
  audit: { items: [], current: null },
  thumbs: new Map(),   // url → object URL (fetched with the key)
};

// Sections living in their own modules (js/evaluations.js) register their route handler here; they share the helpers exported below.
export const sections = {};

// Counters the browser tests read (and a developer can watch in the devtools).
window.taptConsole = { stepsApplied: 0, resultsApplied: 0, progressApplied: 0, snapshots: 0 };

// ---- HTTP ---------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
    this.problem = problem;
  }
}

async function api(path, { method = "GET", body, form, raw } = {}) {
  const headers = { "X-Api-Key": state.key };
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 401 && path !== "/api/usage") { signOut("Your key is no longer valid: sign in again."); throw new ApiError(401, null); }
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not JSON */ }
    if (response.status === 429) {
      const retry = response.headers.get("Retry-After");
      if (problem && retry) problem.detail = `${problem.detail} (retry in ${retry} s)`;
    }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** An image (or other file) fetched with the key, as an object URL (cached). */
async function authorizedUrl(url) {
  if (state.thumbs.has(url)) return state.thumbs.get(url);
  const response = await api(url, { raw: true });
  const objectUrl = URL.createObjectURL(await response.blob());
  state.thumbs.set(url, objectUrl);
  return objectUrl;
}

async function download(url, fileName) {
  const response = await api(url, { raw: true });
  const blobUrl = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = blobUrl;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(blobUrl), 10_000);
}

// ---- small helpers ------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function toast(message, kind = "info") {
  const t = el("div", { class: `toast ${kind === "error" ? "toast-error" : ""}`, role: kind === "error" ? "alert" : "status", text: message });
  $("toasts").append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 3500);
}

const pct = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)}%`;
const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }) : "–";
const reasonText = { changedPrediction: "Changed prediction", closerToAttacked: "Closer to attacked", lowConfidence: "Low confidence" };

function fmtEta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return "almost done";
  if (seconds < 90) return `ETA ${Math.ceil(seconds)} s`;
  if (seconds < 5400) return `ETA ${Math.round(seconds / 60)} min`;
  return `ETA ${(seconds / 3600).toFixed(1)} h`;
}

function setBusy(button, busy, text) {
  if (busy) { button.dataset.label = button.textContent; button.textContent = text; button.disabled = true; }
  else { button.textContent = button.dataset.label || button.textContent; button.disabled = false; }
}

function showError(id, error) { $(id).textContent = error ? (error.message || String(error)) : ""; }

// ---- session and routing ------------------------------------------------------------------------------------

function tenantOf(key) {
  const parts = (key || "").split(".");
  // Signed keys have five parts; keys issued before keys were signed have four.
  return (parts.length === 5 || parts.length === 4) && parts[0] === "tapt" ? parts[1] : null;
}

async function signIn(key) {
  state.key = key.trim();
  const tenant = tenantOf(state.key);
  if (!tenant) throw new Error("That is not a TAPT API key (tapt.<tenant>.<id>.<secret>.<mac>).");
  const response = await fetch("/api/usage", { headers: { "X-Api-Key": state.key } });
  if (response.status === 401) throw new Error("This key is not valid (unknown or revoked).");
  if (response.status === 403) throw new Error("This is not a tenant key.");
  if (!response.ok) throw new Error(`The gateway answered ${response.status}. Try again.`);
  sessionStorage.setItem(KEY_STORAGE, state.key);
  state.tenant = tenant;
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  state.tenant = null;
  if (state.connection) { state.connection.stop(); state.connection = null; }
  state.live = null;
  if (message) $("signin-error").textContent = message;
  location.hash = "#/signin";
  route();
}

function showView(name) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  const signedIn = name !== "signin";
  $("nav").hidden = !signedIn;
  $("session").hidden = !signedIn;
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.tab === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

async function route() {
  const hash = location.hash || "#/jobs";
  const parts = hash.replace(/^#\//, "").split("/").map(decodeURIComponent);
  if (!state.key) { showView("signin"); $("api-key").focus(); return; }
  $("tenant-name").textContent = state.tenant;
  const [section, a, b] = parts;
  try {
    switch (section) {
      case "vocabularies": showView("vocabularies"); await loadVocabularies(); break;
      case "prompts": showView("prompts"); await loadPrompts(); break;
      case "audit": showView("audit"); if (sections.audit) await sections.audit(a, b); break;
      case "evaluations": showView("evaluations"); if (sections.evaluations) await sections.evaluations(a, b); break;
      case "training": showView("training"); if (sections.training) await sections.training(a); break;
      default:
        showView("jobs");
        await Promise.all([loadJobForm(), loadJobs()]);
        if (section === "jobs" && a) await openLive(a);
    }
  } catch (e) {
    if (e.status !== 401) toast(e.message, "error");
  }
}

// ---- vocabularies -------------------------------------------------------------------------------------------

async function loadVocabularies() {
  const list = await api("/api/vocabularies");
  const body = $("vocab-table").tBodies[0];
  body.replaceChildren(...list.map((v) => el("tr", {},
    el("td", {}, el("button", { type: "button", class: "btn-link", text: v.name, onclick: () => showVocabulary(v.name) })),
    el("td", { text: `v${v.latestVersion}` }),
    el("td", { text: String(v.labelCount) }),
    el("td", {}, el("button", {
      type: "button", class: "btn btn-danger btn-small", text: "Delete", "aria-label": `Delete vocabulary ${v.name}`,
      onclick: async () => {
        if (!confirm(`Delete every version of “${v.name}”?`)) return;
        try { await api(`/api/vocabularies/${encodeURIComponent(v.name)}`, { method: "DELETE" }); toast(`Deleted ${v.name}.`); await loadVocabularies(); }
        catch (e) { toast(e.message, "error"); }
      },
    })))));
  $("vocab-empty").hidden = list.length > 0;
}

async function showVocabulary(name) {
  const [v, versions] = await Promise.all([api(`/api/vocabularies/${encodeURIComponent(name)}`), api(`/api/vocabularies/${encodeURIComponent(name)}/versions`)]);
  const detail = $("vocab-detail");
  detail.hidden = false;
  detail.replaceChildren(
    el("h3", { text: `${v.name} · v${v.version}` }),
    el("p", { class: "muted small", text: `Versions: ${versions.map((n) => "v" + n).join(", ")} · template “${v.template}”` }),
    el("ul", { class: "label-cloud", "aria-label": `Labels of ${v.name}` }, v.labels.map((l) => el("li", { text: l.label, title: l.promptText || "" }))),
    el("div", { class: "actions", style: null },
      el("button", { type: "button", class: "btn btn-ghost btn-small", text: "Edit as new version", onclick: () => {
        $("vocab-name").value = v.name;
        $("vocab-labels").value = v.labels.map((l) => l.promptText ? `${l.label} | ${l.promptText}` : l.label).join("\n");
        $("vocab-template").value = v.template;
        $("vocab-labels").focus();
      } })));
}

async function saveVocabulary(event) {
  event.preventDefault();
  showError("vocab-error");
  const name = $("vocab-name").value.trim();
  const labels = $("vocab-labels").value.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).map((line) => {
    const bar = line.indexOf("|");
    return bar < 0 ? line : { label: line.slice(0, bar).trim(), promptText: line.slice(bar + 1).trim() };
  });
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) { showError("vocab-error", new Error("Name: 1–64 letters, digits, “.”, “_” or “-”.")); $("vocab-name").focus(); return; }
  if (labels.length < 2) { showError("vocab-error", new Error("Enter at least two labels, one per line.")); $("vocab-labels").focus(); return; }
  const button = $("vocab-save");
  setBusy(button, true, "Saving…");
  try {
    const existing = (await api("/api/vocabularies")).some((v) => v.name === name);
    const body = { name, labels, template: $("vocab-template").value || undefined };
    const saved = existing
      ? await api(`/api/vocabularies/${encodeURIComponent(name)}/versions`, { method: "POST", body })
      : await api("/api/vocabularies", { method: "POST", body });
    toast(`Saved ${saved.name} v${saved.version} (${saved.labels.length} labels).`);
    await loadVocabularies();
    await showVocabulary(saved.name);
  } catch (e) {
    showError("vocab-error", e);
  } finally {
    setBusy(button, false);
  }
}

// ---- prompt configurations ----------------------------------------------------------------------------------

async function loadPrompts() {
  const [list, models] = await Promise.all([api("/api/prompt-configurations"), api("/api/models").catch(() => [])]);
  // The registered models, offered as the model field's suggestions (a local-only model can still be typed).
  $("prompt-model-names").replaceChildren(...models.map((m) => el("option", {
    value: m.model.name, text: `${m.model.imageSize}px · ${(m.model.bytes / 1048576).toFixed(1)} MiB`,
  })));
  $("prompt-table").tBodies[0].replaceChildren(...list.map((c) => el("tr", {},
    el("td", {}, el("button", { type: "button", class: "btn-link", text: c.name, onclick: () => fillPrompt(c) })),
    el("td", { text: `v${c.version}` }),
    el("td", { class: "mono", text: c.model }),
    el("td", { text: `${c.views ?? "default"} · ${c.steps ?? "default"}` }),
    el("td", {}, el("button", {
      type: "button", class: "btn btn-danger btn-small", text: "Delete", "aria-label": `Delete prompt configuration ${c.name}`,
      onclick: async () => {
        if (!confirm(`Delete every version of “${c.name}”?`)) return;
        try { await api(`/api/prompt-configurations/${encodeURIComponent(c.name)}`, { method: "DELETE" }); toast(`Deleted ${c.name}.`); await loadPrompts(); }
        catch (e) { toast(e.message, "error"); }
      },
    })))));
  $("prompt-empty").hidden = list.length > 0;
}

function fillPrompt(c) {
  $("prompt-name").value = c.name;
  $("prompt-model").value = c.model;
  $("prompt-artifact").value = c.promptArtifact ?? "";
  $("prompt-design").value = c.design ?? "";
  $("prompt-views").value = c.views ?? "";
  $("prompt-steps").value = c.steps ?? "";
  $("prompt-lr").value = c.learningRate ?? "";
  const f = c.flagging ?? { minimumConfidence: 0.5, flagChangedPrediction: true, flagCloserToAttacked: false };
  $("prompt-minconf").value = f.minimumConfidence;
  $("prompt-flag-changed").checked = f.flagChangedPrediction;
  $("prompt-flag-attacked").checked = f.flagCloserToAttacked;
  $("prompt-name").focus();
}

const numberOrNull = (id) => $(id).value === "" ? null : Number($(id).value);

async function savePrompt(event) {
  event.preventDefault();
  showError("prompt-error");
  const name = $("prompt-name").value.trim();
  const body = {
    name,
    model: $("prompt-model").value.trim(),
    promptArtifact: $("prompt-artifact").value.trim() || null,
    design: $("prompt-design").value || null,
    views: numberOrNull("prompt-views"),
    steps: numberOrNull("prompt-steps"),
    learningRate: numberOrNull("prompt-lr"),
    flagging: {
      minimumConfidence: Number($("prompt-minconf").value || 0),
      flagChangedPrediction: $("prompt-flag-changed").checked,
      flagCloserToAttacked: $("prompt-flag-attacked").checked,
    },
  };
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) { showError("prompt-error", new Error("Name: 1–64 letters, digits, “.”, “_” or “-”.")); $("prompt-name").focus(); return; }
  const button = $("prompt-save");
  setBusy(button, true, "Saving…");
  try {
    const existing = (await api("/api/prompt-configurations")).some((c) => c.name === name);
    const saved = existing
      ? await api(`/api/prompt-configurations/${encodeURIComponent(name)}/versions`, { method: "POST", body })
      : await api("/api/prompt-configurations", { method: "POST", body });
    toast(`Saved ${saved.name} v${saved.version}.`);
    await loadPrompts();
  } catch (e) {
    showError("prompt-error", e);
  } finally {
    setBusy(button, false);
  }
}

// ---- jobs: the new-job form ---------------------------------------------------------------------------------

async function loadJobForm() {
  const [vocabularies, configs] = await Promise.all([api("/api/vocabularies"), api("/api/prompt-configurations")]);
  const fill = (select, items, text) => {
    const previous = select.value;
    select.replaceChildren(...items.map((i) => el("option", { value: i.name, text: text(i) })));
    if (items.some((i) => i.name === previous)) select.value = previous;
  };
  fill($("job-vocabulary"), vocabularies, (v) => `${v.name} (v${v.latestVersion}, ${v.labelCount} labels)`);
  fill($("job-config"), configs, (c) => `${c.name} (v${c.version}, ${c.model})`);
  updateFileSummary();
  if (!vocabularies.length || !configs.length)
    showError("new-job-error", new Error("Create a vocabulary and a prompt configuration first."));
  else showError("new-job-error");
}

function addFiles(fileList) {
  const images = [...fileList].filter((f) => f.type.startsWith("image/") || /\.(png|jpe?g|webp|bmp|gif)$/i.test(f.name));
  const skipped = fileList.length - images.length;
  state.files.push(...images);
  if (skipped) toast(`${skipped} file(s) skipped: not images.`);
  updateFileSummary();
}

function updateFileSummary() {
  const n = state.files.length;
  const bytes = state.files.reduce((s, f) => s + f.size, 0);
  $("file-summary").textContent = n ? `${n} image${n === 1 ? "" : "s"} chosen (${(bytes / 1024).toFixed(0)} KB).` : "No images chosen.";
  $("start-job").disabled = n === 0 || !$("job-vocabulary").value || !$("job-config").value;
  $("clear-files").disabled = n === 0;
}

async function startJob(event) {
  event.preventDefault();
  showError("new-job-error");
  if (!state.files.length) return;
  const button = $("start-job");
  setBusy(button, true, "Creating job…");
  const files = state.files;
  try {
    const job = await api("/api/jobs", { method: "POST", body: {
      vocabulary: $("job-vocabulary").value,
      promptConfiguration: $("job-config").value,
      name: $("job-name").value.trim() || null,
      seed: Number($("job-seed").value || 0),
    } });
    const localUrls = new Map();
    const localNames = new Map();
    let rejected = [];
    for (let i = 0; i < files.length; i += UPLOAD_BATCH) {
      button.textContent = `Uploading ${Math.min(i + UPLOAD_BATCH, files.length)} / ${files.length}…`;
      const batch = files.slice(i, i + UPLOAD_BATCH);
      const form = new FormData();
      for (const f of batch) form.append("images", f, f.name);
      let receipt;
      try {
        receipt = await api(`/api/jobs/${job.jobId}/images`, { method: "POST", form });
      } catch (e) {
        if (e.code === "images_rejected") { rejected = rejected.concat(e.problem.rejected || []); continue; }
        throw e;
      }
      rejected = rejected.concat(receipt.rejected);
      // Match accepted indices to the local files in order (rejected ones are skipped by name).
      let r = 0;
      let a = 0;
      for (const f of batch) {
        if (r < receipt.rejected.length && receipt.rejected[r].name === f.name) { r++; continue; }
        if (a < receipt.accepted.length) {
          const { index } = receipt.accepted[a++];
          localUrls.set(index, URL.createObjectURL(f));
          localNames.set(index, f.name);
        }
      }
    }
    if (!localUrls.size) throw new Error(`No image was accepted: ${rejected.map((x) => `${x.name}: ${x.reason}`).join("; ")}`);
    if (rejected.length) toast(`${rejected.length} image(s) refused: ${rejected.slice(0, 3).map((x) => x.name).join(", ")}${rejected.length > 3 ? "…" : ""}`, "error");
    state.files = [];
    updateFileSummary();
    // Follow first, then start: every live event of the job reaches this page.
    await openLive(job.jobId, localUrls, { total: localUrls.size, names: localNames });
    history.replaceState(null, "", `#/jobs/${job.jobId}`);
    button.textContent = "Starting…";
    const started = await api(`/api/jobs/${job.jobId}/start`, { method: "POST" });
    applyJob(started);
    await loadJobs();
  } catch (e) {
    showError("new-job-error", e);
  } finally {
    setBusy(button, false);
    updateFileSummary();
  }
}

async function loadJobs() {
  const jobs = await api("/api/jobs?limit=25");
  $("jobs-table").tBodies[0].replaceChildren(...jobs.map((j) => el("tr", {},
    el("td", {}, el("a", { class: "job-link", href: `#/jobs/${j.jobId}`, text: j.name || j.jobId.slice(0, 16) + "…", title: j.jobId })),
    el("td", {}, el("span", { class: `badge badge-${j.state}`, text: j.state })),
    el("td", {}, el("div", { class: "mini-progress" },
      el("progress", { max: Math.max(1, j.counts.total), value: j.counts.completed, "aria-label": `${j.counts.completed} of ${j.counts.total} images` }),
      el("span", { class: "small muted", text: `${j.counts.completed}/${j.counts.total}` }))),
    el("td", { text: String(j.counts.flagged) }),
    el("td", { class: "small", text: fmtTime(j.createdAt) }))));
  $("jobs-empty").hidden = jobs.length > 0;
  const auditJob = $("audit-job");
  const previous = auditJob.value;
  auditJob.replaceChildren(el("option", { value: "", text: "All recent jobs" }),
    ...jobs.filter((j) => j.counts.flagged > 0).map((j) => el("option", { value: j.jobId, text: `${j.name || j.jobId.slice(0, 16)} (${j.counts.flagged} flagged)` })));
  auditJob.value = previous;
}

// ---- live job view ------------------------------------------------------------------------------------------

async function connection() {
  if (state.connection && state.connection.state === signalR.HubConnectionState.Connected) return state.connection;
  if (!state.connection) {
    const c = new signalR.HubConnectionBuilder()
      .withUrl("/hubs/jobs", { accessTokenFactory: () => state.key })
      // Keep retrying (the default policy gives up after four tries, ~42 s): a gateway restart or a long network blip
      // must not leave an open console silently without live events. 0, 2, 5, 10 s, then every 30 s.
      .withAutomaticReconnect({ nextRetryDelayInMilliseconds: (ctx) => [0, 2000, 5000, 10000][ctx.previousRetryCount] ?? 30000 })
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    c.on("steps", (batch) => { for (const s of batch) applyStep(s); });
    c.on("imagesCompleted", (batch) => { for (const e of batch) applyResult(e.jobId, e.result); });
    c.on("jobProgress", (p) => applyProgress(p));
    c.on("resync", (e) => { if (state.live?.jobId === e.jobId) subscribe(e.jobId).catch((x) => toast(x.message, "error")); });
    c.onreconnected(() => { if (state.live) subscribe(state.live.jobId).catch(() => {}); });
    state.connection = c;
  }
  if (state.connection.state === signalR.HubConnectionState.Disconnected) await state.connection.start();
  return state.connection;
}

async function openLive(jobId, localUrls = new Map(), hint = {}) {
  const previous = state.live;
  if (previous && previous.jobId !== jobId && state.connection) state.connection.invoke("Unsubscribe", previous.jobId).catch(() => {});
  state.live = { jobId, labels: [], tiles: new Map(), results: new Map(), progress: null, lossByStep: new Map(), localUrls, localNames: hint.names ?? new Map() };
  $("live").hidden = false;
  $("live-id").textContent = jobId;
  $("tiles").replaceChildren();
  drawLoss();
  if (hint.total) ensureTiles(hint.total);
  await subscribe(jobId);
}

async function subscribe(jobId) {
  const c = await connection();
  const snapshot = await c.invoke("Subscribe", jobId);
  if (state.live?.jobId !== jobId) return;
  window.taptConsole.snapshots++;
  state.live.labels = snapshot.labels;
  applyJob(snapshot.job);
  for (const r of snapshot.results) applyResult(jobId, r);
}

function applyJob(job) {
  const live = state.live;
  if (!live || live.jobId !== job.jobId) return;
  $("live-title").textContent = job.name || "Job";
  ensureTiles(job.counts.total);
  applyProgress({
    jobId: job.jobId, state: job.state, total: job.counts.total, completed: job.counts.completed, succeeded: job.counts.succeeded,
    failed: job.counts.failed, flagged: job.counts.flagged, throughputPerSecond: job.throughputPerSecond, etaSeconds: job.etaSeconds, waiting: job.waiting,
  });
}

function ensureTiles(total) {
  const live = state.live;
  const list = $("tiles");
  for (let i = live.tiles.size; i < total; i++) {
    const img = el("img", { class: "tile-img", alt: `Image ${i + 1}`, loading: "lazy" });
    const name = el("span", { class: "tile-name", text: live.localNames.get(i) ?? `#${i + 1}` });
    const step = el("span", { class: "tile-step", text: "queued" });
    const verdict = el("div", { class: "tile-verdict", "aria-live": "off" });
    const bars = el("ul", { class: "bars", "aria-label": "Top labels" });
    const flag = el("div", { class: "flag-note" });
    const li = el("li", { class: "tile", "data-index": String(i), "data-state": "pending", "data-steps": "0" },
      img, el("div", { class: "tile-head" }, name, step), verdict, bars, flag);
    list.append(li);
    const tile = { li, img, name, step, verdict, bars, flag, barRows: [] };
    renderBars(tile, [{ label: "—", probability: 0 }, { label: "—", probability: 0 }, { label: "—", probability: 0 }]);
    tile.bars.classList.add("bars-waiting");
    live.tiles.set(i, tile);
    const local = live.localUrls.get(i);
    if (local) img.src = local;
    else if (i < 240) authorizedUrl(`/api/jobs/${live.jobId}/images/${i}`).then((u) => { img.src = u; }).catch(() => {});
  }
}

function renderBars(tile, topK, count = 3) {
  const items = topK.slice(0, count);
  if (items.length && items[0].label !== "—") tile.bars.classList.remove("bars-waiting");
  while (tile.barRows.length < items.length) {
    const label = el("span", { class: "bar-label" });
    const value = el("span", { class: "bar-value" });
    const fill = el("div", { class: "bar-fill" });
    const row = el("li", { class: "bar" }, label, value, el("div", { class: "bar-track" }, fill));
    tile.bars.append(row);
    tile.barRows.push({ row, label, value, fill });
  }
  items.forEach((p, i) => {
    const r = tile.barRows[i];
    r.row.classList.toggle("bar-top", i === 0);
    r.label.textContent = p.label;
    r.label.title = p.label;
    r.value.textContent = p.label === "—" ? "" : pct(p.probability);
    r.fill.style.width = p.label === "—" ? "0%" : `${Math.max(1, p.probability * 100).toFixed(1)}%`;
    r.row.setAttribute("aria-label", `${p.label}: ${pct(p.probability)}`);
  });
}

function applyStep(s) {
  const live = state.live;
  if (!live || live.jobId !== s.jobId || live.results.has(s.imageIndex)) return;
  ensureTiles(s.imageIndex + 1);
  const tile = live.tiles.get(s.imageIndex);
  tile.li.dataset.state = "tuning";
  tile.li.dataset.steps = String(Number(tile.li.dataset.steps) + 1 + (s.coalesced || 0));
  tile.step.textContent = `step ${s.step}`;
  renderBars(tile, s.topK);
  tile.verdict.textContent = s.topK[0] ? `${s.topK[0].label}…` : "";
  const sum = live.lossByStep.get(s.step) ?? { n: 0, total: 0, entropy: 0, align: 0 };
  const [total, entropy, align] = [Number(s.totalLoss), Number(s.entropyLoss), Number(s.alignmentAdversarial)];
  if ([total, entropy, align].every(Number.isFinite)) {
    sum.n++; sum.total += total; sum.entropy += entropy; sum.align += align;
    live.lossByStep.set(s.step, sum);
    scheduleLossDraw();
  }
  window.taptConsole.stepsApplied++;
}

function applyResult(jobId, r) {
  const live = state.live;
  if (!live || live.jobId !== jobId || live.results.has(r.index)) return;
  live.results.set(r.index, r);
  ensureTiles(r.index + 1);
  const tile = live.tiles.get(r.index);
  tile.name.textContent = r.name;
  tile.name.title = r.name;
  tile.img.alt = r.name;
  if (r.error) {
    tile.li.dataset.state = "failed";
    tile.step.textContent = "failed";
    tile.verdict.textContent = "No result";
    tile.flag.textContent = r.error;
  } else {
    tile.li.dataset.state = "done";
    tile.li.dataset.flagged = String(r.flagged);
    tile.step.textContent = pct(r.confidence);
    renderBars(tile, r.topK);
    const changed = r.baselineLabel && r.baselineLabel !== r.label;
    tile.verdict.replaceChildren(el("span", { text: r.label ?? "?" }), ...(changed ? [el("span", { class: "was", text: ` · was ${r.baselineLabel}` })] : []));
    tile.flag.textContent = r.flagged ? `⚑ ${r.reasons.map((x) => reasonText[x] || x).join(", ")}` : "";
  }
  window.taptConsole.resultsApplied++;
}

function applyProgress(p) {
  const live = state.live;
  if (!live || live.jobId !== p.jobId) return;
  const final = p.state === "completed" || p.state === "cancelled";
  if (live.progress && !final && live.progress.completed > p.completed) return;
  if (live.progress && (live.progress.state === "completed" || live.progress.state === "cancelled") && !final) return;
  live.progress = p;
  ensureTiles(p.total);
  const progress = $("live-progress");
  progress.max = Math.max(1, p.total);
  progress.value = p.completed;
  $("live-progress-text").textContent = `${p.completed} / ${p.total} images`;
  $("live-eta").textContent = p.state === "running" ? fmtEta(p.etaSeconds) : p.state;
  $("stat-succeeded").textContent = p.succeeded;
  $("stat-failed").textContent = p.failed;
  $("stat-flagged").textContent = p.flagged;
  $("stat-throughput").textContent = p.throughputPerSecond ? `${p.throughputPerSecond.toFixed(1)}/s` : "–";
  $("live-waiting").textContent = p.waiting || "";
  const badge = $("live-state");
  badge.textContent = p.state;
  badge.className = `badge badge-${p.state}`;
  $("cancel-job").disabled = final;
  window.taptConsole.progressApplied++;
  if (final && !live.refreshedList) { live.refreshedList = true; loadJobs().catch(() => {}); }
}

let lossFrame = 0;
function scheduleLossDraw() {
  if (lossFrame) return;
  lossFrame = requestAnimationFrame(() => { lossFrame = 0; drawLoss(); });
}

/** The loss curve: each loss averaged over the images seen so far, by tuning step; each line scaled to its own range. */
function drawLoss() {
  const svg = $("loss-chart");
  const ns = "http://www.w3.org/2000/svg";
  const byStep = [...(state.live?.lossByStep ?? new Map()).entries()].sort((a, b) => a[0] - b[0])
    .map(([step, v]) => ({ step, total: v.total / v.n, entropy: v.entropy / v.n, align: v.align / v.n }));
  const nodes = [];
  for (const y of [12, 40, 68, 96]) {
    const line = document.createElementNS(ns, "line");
    line.setAttribute("x1", "0"); line.setAttribute("x2", "320"); line.setAttribute("y1", String(y)); line.setAttribute("y2", String(y));
    line.setAttribute("class", "grid");
    nodes.push(line);
  }
  const series = [["align", "Alignment"], ["entropy", "Entropy"], ["total", "Total"]];   // total drawn last, on top
  const x = (i) => byStep.length === 1 ? 160 : 8 + i / (byStep.length - 1) * 304;
  for (const [k] of series) {
    if (!byStep.length) break;
    const values = byStep.map((p) => p[k]);
    const min = Math.min(...values);
    const max = Math.max(...values);
    const y = (v) => max - min < 1e-9 ? 54 : 96 - (v - min) / (max - min) * 84;
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("class", `line-${k}`);
    pl.setAttribute("points", byStep.map((p, i) => `${x(i).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" "));
    nodes.push(pl);
  }
  svg.replaceChildren(...nodes);
  const first = byStep[0];
  const last = byStep[byStep.length - 1];
  const fmt = (v) => Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
  $("loss-caption").replaceChildren(...series.flatMap(([k, name]) => [
    el("span", { class: `key key-${k}` }),
    el("span", { text: last ? `${name} ${fmt(first[k])} → ${fmt(last[k])}` : name }),
  ]), el("span", { class: "muted", text: last ? ` · mean by step, steps ${first.step}–${last.step}` : " · by tuning step" }));
  svg.setAttribute("aria-label", last
    ? `Mean tuning loss by step, ${byStep.length} steps: total from ${fmt(first.total)} to ${fmt(last.total)}`
    : "No tuning steps yet");
}

// ---- audit: js/audit.js (reviews, keyboard navigation, trends, trail, bundles) ---------------------------------

// ---- wiring -------------------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("signin-error");
    const button = $("signin-submit");
    setBusy(button, true, "Signing in…");
    try {
      await signIn($("api-key").value);
      $("api-key").value = "";
      location.hash = "#/jobs";
      await route();
      $("main").focus();
    } catch (e) {
      state.key = null;
      showError("signin-error", e);
      $("api-key").focus();
    } finally {
      setBusy(button, false);
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("vocab-form").addEventListener("submit", saveVocabulary);
  $("prompt-form").addEventListener("submit", savePrompt);
  $("new-job-form").addEventListener("submit", startJob);
  $("job-vocabulary").addEventListener("change", updateFileSummary);
  $("job-config").addEventListener("change", updateFileSummary);
  $("refresh-jobs").addEventListener("click", () => loadJobs().catch((e) => toast(e.message, "error")));
  $("clear-files").addEventListener("click", () => { state.files = []; updateFileSummary(); });
  $("cancel-job").addEventListener("click", async () => {
    if (!state.live) return;
    try { applyJob(await api(`/api/jobs/${state.live.jobId}/cancel`, { method: "POST" })); } catch (e) { toast(e.message, "error"); }
  });
  $("export-csv").addEventListener("click", () => state.live && download(`/api/jobs/${state.live.jobId}/export?format=csv`, `${state.live.jobId}.csv`).catch((e) => toast(e.message, "error")));
  $("export-json").addEventListener("click", () => state.live && download(`/api/jobs/${state.live.jobId}/export?format=json`, `${state.live.jobId}.json`).catch((e) => toast(e.message, "error")));

  const zone = $("dropzone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragover"); });
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.remove("dragover"); });
  zone.addEventListener("drop", (e) => { if (e.dataTransfer?.files?.length) addFiles(e.dataTransfer.files); });
  window.addEventListener("hashchange", route);
}

wire();
if (state.key) state.tenant = tenantOf(state.key);
route();

// Labelled images (a part per image, named by its label) in requests of UPLOAD_BATCH, the progress on the button. A
// request none of whose images was accepted (422) counts its refusals and the upload goes on; refusals end in a toast.
async function uploadLabelled(url, files, button) {
  let accepted = 0;
  const rejected = [];
  for (let i = 0; i < files.length; i += UPLOAD_BATCH) {
    button.textContent = `Uploading ${Math.min(i + UPLOAD_BATCH, files.length)} / ${files.length}…`;
    const form = new FormData();
    for (const { file, label } of files.slice(i, i + UPLOAD_BATCH)) form.append(label, file, file.name);
    try {
      const receipt = await api(url, { method: "POST", form });
      accepted += receipt.acceptedIndices.length;
      rejected.push(...receipt.rejected);
    } catch (e) {
      if (e.code !== "images_rejected") throw e;
      rejected.push(...(e.problem.rejected || []));
    }
  }
  if (!accepted) throw new Error(`No image was accepted: ${rejected.map((x) => `${x.name}: ${x.reason}`).join("; ")}`);
  if (rejected.length) toast(`${rejected.length} image(s) refused: ${rejected.slice(0, 3).map((x) => `${x.name} (${x.reason})`).join(", ")}${rejected.length > 3 ? "…" : ""}`, "error");
  return accepted;
}

export { api, el, toast, download, authorizedUrl, connection, state, fmtTime, fmtEta, pct, setBusy, showError, route, loadJobs, uploadLabelled };
