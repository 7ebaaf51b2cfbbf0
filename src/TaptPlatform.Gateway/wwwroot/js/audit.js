// TAPT Console: the audit view. Flagged images with their verdicts (unreviewed first, counts by verdict), one image
// beside plain CLIP's and TAPT's predictions with the review panel, keyboard review (j/k or ↓/↑: next/previous;
// 1/2/3: verdicts; n: note), and audit bundles downloaded with their progress. Trends and the trail: audit-insights.js.
import { sections, api, el, toast, download, authorizedUrl, fmtTime, pct, setBusy, loadJobs } from "./console.js";
import { wireInsights, rangeQuery } from "./audit-insights.js";

const $ = (id) => document.getElementById(id);
const reasonText = { changedPrediction: "Changed prediction", closerToAttacked: "Closer to attacked", lowConfidence: "Low confidence" };
export const verdictText = { "confirmed-attack": "Confirmed attack", "false-alarm": "False alarm", "needs-follow-up": "Needs follow-up", unreviewed: "Unreviewed" };
const VERDICT_KEYS = { 1: "confirmed-attack", 2: "false-alarm", 3: "needs-follow-up" };
const audit = { items: [], counts: {}, position: -1, view: null, review: null, busy: false, loaded: false };
window.taptConsole = Object.assign(window.taptConsole || {}, { verdictsRecorded: 0, auditOpened: 0, bundleBytes: 0 });

const keyOf = (jobId, index) => `${jobId}/${index}`;
const fmtBytes = (n) => n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(0)} kB` : `${n} B`;

// ---- the list -------------------------------------------------------------------------------------------------

async function show(jobId, index) {
  const open = jobId && index !== undefined ? { jobId, index: Number(index) } : null;
  // Opened from the list (or with the keys): the list stays as it is, so the order a reviewer works through holds.
  if (open && audit.loaded && audit.items.some((i) => keyOf(i.jobId, i.result.index) === keyOf(open.jobId, open.index))) {
    await openAudit(open.jobId, open.index);
    return;
  }
  await loadJobs().catch(() => {});
  if (open) $("audit-job").value = [...$("audit-job").options].some((o) => o.value === open.jobId) ? open.jobId : "";
  await searchAudit();
  if (open) await openAudit(open.jobId, open.index);
}

async function searchAudit(event) {
  event?.preventDefault();
  const q = rangeQuery();
  const add = (k, v) => { if (v) q.set(k, v); };
  add("reason", $("audit-reason").value);
  add("label", $("audit-label").value.trim());
  add("verdict", $("audit-verdict").value);
  q.set("limit", "500");
  const page = await api(`/api/audit?${q}`);
  audit.items = page.items;
  audit.counts = page.verdicts || {};
  audit.loaded = true;
  audit.position = -1;
  $("audit-summary").textContent = page.items.length
    ? `${page.items.length} flagged image${page.items.length === 1 ? "" : "s"}${page.truncated ? " (more exist: narrow the filters)" : ""}, unreviewed first.`
    : "No flagged images match these filters.";
  renderCounts();
  $("audit-list").replaceChildren(...page.items.map(listItem));
}

function listItem(item) {
  const img = el("img", { alt: "" });
  authorizedUrl(item.imageUrl).then((u) => { img.src = u; }).catch(() => {});
  const r = item.result;
  const verdict = item.review?.verdict || "unreviewed";
  const button = el("button", {
    type: "button", class: "audit-item", "data-job": item.jobId, "data-index": String(r.index), "data-verdict": verdict,
    onclick: () => openAudit(item.jobId, r.index).catch((e) => toast(e.message, "error")),
  }, img, el("div", {},
    el("div", { class: "line1" }, el("span", { class: `badge badge-${verdict}`, text: verdictText[verdict] }),
      `${r.label ?? "?"}${r.baselineLabel && r.baselineLabel !== r.label ? ` ← ${r.baselineLabel}` : ""}`),
    el("div", { class: "line2", text: `${r.name} · ${r.reasons.map((x) => reasonText[x] || x).join(", ")}` }),
    el("div", { class: "line2", text: `${item.jobName || item.jobId.slice(0, 16)} · ${fmtTime(r.completedAt)}` })));
  return el("li", {}, button);
}

function renderCounts() {
  const chosen = $("audit-verdict").value;
  $("audit-counts").replaceChildren(...Object.keys(verdictText).map((v) => el("button", {
    type: "button", class: "verdict-chip", "data-verdict": v, "aria-pressed": String(chosen === v),
    onclick: () => { $("audit-verdict").value = chosen === v ? "" : v; searchAudit().catch((e) => toast(e.message, "error")); },
  }, el("span", { class: `badge badge-${v}`, text: verdictText[v] }), el("strong", { text: String(audit.counts[v] ?? 0) }))));
}

// ---- one image and its review ------------------------------------------------------------------------------------

function barsFor(list, labels, probabilities, highlight) {
  const ranked = probabilities.map((p, i) => ({ label: labels[i] ?? `#${i}`, probability: p, index: i }))
    .sort((a, b) => b.probability - a.probability).slice(0, 5);
  list.replaceChildren(...ranked.map((p) => {
    const fill = el("div", { class: "bar-fill" });
    fill.style.width = `${Math.max(1, p.probability * 100).toFixed(1)}%`;
    return el("li", { class: `bar ${p.index === highlight ? "bar-top" : ""}`, "aria-label": `${p.label}: ${pct(p.probability)}` },
      el("span", { class: "bar-label", text: p.label, title: p.label }), el("span", { class: "bar-value", text: pct(p.probability) }),
      el("div", { class: "bar-track" }, fill));
  }));
}

async function openAudit(jobId, index) {
  const base = `/api/audit/${encodeURIComponent(jobId)}/${index}`;
  const [view, review] = await Promise.all([api(base), api(`${base}/reviews`)]);
  const rec = view.record;
  const labels = rec.vocabulary.labels.map((l) => l.label);
  const t = rec.tuning;
  audit.view = view;
  audit.position = audit.items.findIndex((i) => i.jobId === jobId && i.result.index === index);
  const hash = `#/audit/${encodeURIComponent(jobId)}/${index}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);   // no hashchange: the list keeps its order
  for (const b of document.querySelectorAll(".audit-item")) b.setAttribute("aria-current", String(b.dataset.job === jobId && Number(b.dataset.index) === index));
  document.querySelector(".audit-item[aria-current='true']")?.scrollIntoView({ block: "nearest" });
  const panel = $("audit-detail");
  panel.hidden = false;
  $("audit-detail-title").textContent = rec.imageName;
  $("audit-detail-sub").textContent = `${jobId} · image ${index}`;
  $("audit-image").alt = `Flagged image ${rec.imageName}`;
  $("audit-image").removeAttribute("src");
  authorizedUrl(view.imageUrl).then((u) => { if (audit.view === view) $("audit-image").src = u; }).catch(() => {});
  $("audit-baseline-label").textContent = t ? `${labels[t.baselinePrediction] ?? "?"} · ${pct(t.baselineProbabilities[t.baselinePrediction])}` : "–";
  $("audit-defended-label").textContent = t ? `${labels[t.prediction] ?? "?"} · ${pct(t.probabilities[t.prediction])}` : (rec.result.error ?? "–");
  if (t) {
    barsFor($("audit-baseline-bars"), labels, t.baselineProbabilities, t.baselinePrediction);
    barsFor($("audit-defended-bars"), labels, t.probabilities, t.prediction);
  }
  const reasons = (rec.reasons ?? []).map((x) => x.charAt(0).toLowerCase() + x.slice(1));
  $("audit-reasons").replaceChildren(el("span", { class: "muted small", text: "Flagged because:" }),
    ...reasons.map((x) => el("span", { class: "badge badge-flag", text: reasonText[x] || x })));
  $("audit-steps").tBodies[0].replaceChildren(...(t?.stepMetrics ?? []).map((s) => el("tr", {},
    el("td", { text: String(s.step) }),
    el("td", { text: Number(s.entropyLoss).toFixed(4) }),
    el("td", { text: Number(s.alignmentAdversarial).toFixed(4) }),
    el("td", { text: Number(s.alignmentClean).toFixed(4) }),
    el("td", { text: Number(s.totalLoss).toFixed(4) }),
    el("td", { text: s.topK?.[0] ? `${s.topK[0].label} (${pct(s.topK[0].probability)})` : "–" }))));
  $("audit-provenance").textContent = t
    ? `Model ${t.model} (${t.modelChecksum.slice(0, 12)}…), artifact ${t.promptArtifact}, design ${t.design}, ${t.views} views × ${t.steps} steps, lr ${t.learningRate}; vocabulary ${rec.vocabulary.name} v${rec.vocabulary.version}, configuration ${rec.configuration.name} v${rec.configuration.version}, seed ${rec.seed}.`
    : "";
  $("audit-download").onclick = () => downloadFile(view.downloadUrl, `${jobId}-${String(index).padStart(5, "0")}-audit.json`);
  $("audit-download-image").onclick = () => downloadFile(view.imageUrl, rec.imageName || `image-${index}`);
  $("review-note").value = "";
  renderReview(review);
  window.taptConsole.auditOpened++;
  if (!panel.contains(document.activeElement)) panel.focus({ preventScroll: true });
}

function downloadFile(url, name) {
  download(url, name).catch((e) => toast(e.message, "error"));
}

function renderReview(review) {
  audit.review = review;
  const verdict = review.current?.verdict || "unreviewed";
  const badge = $("review-current");
  badge.className = `badge badge-${verdict}`;
  badge.textContent = verdictText[verdict];
  for (const b of document.querySelectorAll(".verdict-btn")) b.setAttribute("aria-pressed", String(b.dataset.verdict === verdict));
  const total = audit.items.length;
  $("review-position").textContent = audit.position >= 0 ? `${audit.position + 1} of ${total}` : "not in the list";
  $("review-history").replaceChildren(...[...review.history].reverse().map((h) => el("li", {},
    el("span", { class: `badge badge-${h.verdict}`, text: verdictText[h.verdict] }),
    ` revision ${h.revision} by key ${h.reviewedBy} · ${fmtTime(h.reviewedAt)}`,
    h.note ? el("div", { class: "note", text: h.note }) : null)));
}

async function recordVerdict(verdict) {
  if (!audit.view || audit.busy) return;
  const { jobId, index } = audit.view;
  const before = audit.review?.current?.verdict || "unreviewed";
  audit.busy = true;
  try {
    const note = $("review-note").value.trim();
    const review = await api(`/api/audit/${encodeURIComponent(jobId)}/${index}/reviews`, {
      method: "POST", body: { verdict, note: note || null, expectedRevision: audit.review?.current?.revision ?? 0 },
    });
    window.taptConsole.verdictsRecorded++;
    $("review-note").value = "";
    renderReview(review);
    updateListed(jobId, index, review.current, before);
    toast(`${verdictText[verdict]} recorded (revision ${review.current.revision}).`);
    if ($("review-advance").checked) await move(1);
  } catch (e) {
    toast(e.message, "error");
    if (e.status === 409) renderReview(await api(`/api/audit/${encodeURIComponent(jobId)}/${index}/reviews`));
  } finally {
    audit.busy = false;
  }
}

/** The list item and the counts follow a recorded verdict, without reordering the list under the reviewer. */
function updateListed(jobId, index, current, before) {
  const item = audit.items.find((i) => i.jobId === jobId && i.result.index === index);
  if (item) item.review = { verdict: current.verdict, revision: current.revision, reviewedBy: current.reviewedBy, reviewedAt: current.reviewedAt };
  if (before !== current.verdict) {
    audit.counts[before] = Math.max(0, (audit.counts[before] ?? 0) - 1);
    audit.counts[current.verdict] = (audit.counts[current.verdict] ?? 0) + 1;
    renderCounts();
  }
  const button = document.querySelector(`.audit-item[data-job="${CSS.escape(jobId)}"][data-index="${index}"]`);
  if (!button) return;
  button.dataset.verdict = current.verdict;
  const badge = button.querySelector(".badge");
  badge.className = `badge badge-${current.verdict}`;
  badge.textContent = verdictText[current.verdict];
}

async function move(step) {
  if (audit.items.length === 0) return;
  const next = audit.position < 0 ? (step > 0 ? 0 : audit.items.length - 1) : audit.position + step;
  if (next < 0 || next >= audit.items.length) { toast(step > 0 ? "That was the last flagged image in the list." : "This is the first flagged image in the list."); return; }
  const item = audit.items[next];
  await openAudit(item.jobId, item.result.index);
}

// ---- keys -------------------------------------------------------------------------------------------------------

function onKey(e) {
  if ($("view-audit").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) {
    if (e.key === "Escape" && t.id === "review-note") { e.preventDefault(); $("audit-detail").focus(); }
    return;
  }
  let action = null;
  if (e.key === "j" || e.key === "ArrowDown") action = () => move(1);
  else if (e.key === "k" || e.key === "ArrowUp") action = () => move(-1);
  else if (VERDICT_KEYS[e.key] && audit.view) action = () => recordVerdict(VERDICT_KEYS[e.key]);
  else if (e.key === "n" && audit.view) action = async () => $("review-note").focus();
  if (!action) return;
  e.preventDefault();
  action().catch((x) => toast(x.message, "error"));
}

// ---- bundles ----------------------------------------------------------------------------------------------------

async function exportBundle() {
  const button = $("bundle-export");
  setBusy(button, true, "Exporting…");
  const text = $("bundle-progress-text");
  const bar = $("bundle-progress");
  $("bundle-progress-block").hidden = false;
  try {
    const q = rangeQuery();
    const response = await api(`/api/audit/bundle?${q}`, { raw: true });
    const estimate = Number(response.headers.get("X-Bundle-Estimated-Bytes")) || 0;
    const images = response.headers.get("X-Bundle-Images") ?? "?";
    const reader = response.body.getReader();
    const chunks = [];
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.length;
      bar.max = Math.max(estimate, received, 1);
      bar.value = received;
      text.textContent = `${fmtBytes(received)} received of about ${fmtBytes(estimate)} · ${images} flagged images`;
    }
    bar.max = bar.value = Math.max(received, 1);
    text.textContent = `${fmtBytes(received)} received · ${images} flagged images · done`;
    window.taptConsole.bundleBytes = received;
    const name = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "audit-bundle.zip";
    const url = URL.createObjectURL(new Blob(chunks, { type: "application/zip" }));
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    text.textContent = `Export failed: ${e.message}`;
    toast(e.message, "error");
  } finally {
    setBusy(button, false);
  }
}

// ---- wiring -----------------------------------------------------------------------------------------------------

function wire() {
  $("audit-filters").addEventListener("submit", (e) => searchAudit(e).catch((x) => toast(x.message, "error")));
  for (const b of document.querySelectorAll(".verdict-btn")) b.addEventListener("click", () => recordVerdict(b.dataset.verdict));
  $("review-prev").addEventListener("click", () => move(-1).catch((e) => toast(e.message, "error")));
  $("review-next").addEventListener("click", () => move(1).catch((e) => toast(e.message, "error")));
  $("bundle-export").addEventListener("click", exportBundle);
  document.addEventListener("keydown", onKey);
  wireInsights();
}

wire();
sections.audit = (jobId, index) => show(jobId, index);
// console.js routed before this module registered: show the audit view now if the page opened on it.
if (location.hash.startsWith("#/audit") && !$("view-audit").hidden) {
  const [, , jobId, index] = location.hash.split("/").map(decodeURIComponent);
  show(jobId, index).catch((e) => toast(e.message, "error"));
}
