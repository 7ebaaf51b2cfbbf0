// TAPT Console: what the evaluation form and report show of the attacks beyond the gradient ones: Square's query budget,
// EOT samples through the defense, AutoAttack's robust accuracy after each stage, queries per image and the
// gradient-masking checks (warnings marked). Shared by evaluations.js.
import { el } from "./console.js";

const $ = (id) => document.getElementById(id);
const METHODS = [["clip", "CLIP"], ["apt", "APT prompts"], ["tapt", "TAPT"]];
/** AutoAttack's EOT draws for randomised defenses (the API refuses fewer through the defense). */
export const RANDOMISED_EOT = 20;
const USES_QUERIES = new Set(["square", "autoattack"]);
const USES_STEPS = new Set(["pgd", "cw", "di", "apgd-ce", "apgd-t", "fab-t", "autoattack", "autoattack-rand"]);
const pct1 = (p) => (p === null || p === undefined ? "–" : `${(p * 100).toFixed(1)}%`);
const eps255 = (e) => { const v = e * 255; return Math.abs(v - Math.round(v)) < 1e-6 ? String(Math.round(v)) : v.toFixed(2); };

/** Shows the fields the chosen attack and protocol read (queries for Square and AutoAttack, EOT through the defense). */
export function syncAttackFields() {
  const attack = $("eval-attack").value;
  const adaptive = $("eval-protocol").value === "adaptive";
  $("eval-queries-field").hidden = !USES_QUERIES.has(attack);
  $("eval-steps-field").hidden = !USES_STEPS.has(attack);
  $("eval-eot-field").hidden = !adaptive;
  const eot = $("eval-eot");
  eot.min = attack === "autoattack-rand" && adaptive ? String(RANDOMISED_EOT) : "1";
  if (attack === "autoattack-rand" && adaptive && Number(eot.value || 1) < RANDOMISED_EOT) eot.value = String(RANDOMISED_EOT);
}

/** The attack's part of the create request, as the API names it. */
export function attackFields() {
  const attack = $("eval-attack").value;
  const body = { attack };
  if (USES_QUERIES.has(attack)) body.queries = Number($("eval-queries").value || 5000);
  if ($("eval-protocol").value === "adaptive") body.eot = Number($("eval-eot").value || 1);
  return body;
}

export function wireAttackFields() {
  $("eval-attack").addEventListener("change", syncAttackFields);
  $("eval-protocol").addEventListener("change", syncAttackFields);
  syncAttackFields();
}

/** The report's summary facts for the attack's budget (queries, stages). */
export function attackFacts(r, fact) {
  const facts = [];
  if (r.attack.queries !== null && r.attack.queries !== undefined) facts.push(fact("Square queries", `${r.attack.queries} per image and restart`));
  if (r.attack.stages) facts.push(fact("Stages", r.attack.stages.join(" → ")));
  return facts;
}

/** AutoAttack's robust accuracy after each stage at one ε, and Square's mean queries per image (null when neither applies). */
export function stagesBlock(result, epsilon) {
  const parts = [];
  if (result.stages) {
    parts.push(el("div", { class: "table-wrap" }, el("table", { class: "table table-compact", id: "rep-stages" },
      el("caption", { class: "visually-hidden", text: "Robust accuracy per method after each attack stage" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Stage" }), ...METHODS.map(([, name]) => el("th", { scope: "col", class: "num", text: name })))),
      el("tbody", {}, result.stages.map((s) => el("tr", {},
        el("th", { scope: "row", text: `${s.stage}. ${s.attack}` }),
        ...METHODS.map(([m]) => el("td", { class: "num", text: s[m] === null ? "not attacked" : pct1(s[m]) }))))))));
  }
  if (result.queriesPerImage) {
    const q = result.queriesPerImage;
    parts.push(el("p", { id: "rep-queries", text: `Queries per image (mean; 0 for images already wrong): ${METHODS.filter(([m]) => q[m] !== null).map(([m, name]) => `${name} ${q[m].toFixed(1)}`).join(", ")}` }));
  }
  if (!parts.length) return null;
  return el("section", { class: "report-block", "aria-labelledby": "rep-stages-title" },
    el("h3", { id: "rep-stages-title", text: result.stages ? `Robust accuracy after each stage at ε = ${eps255(epsilon)}/255` : `Queries at ε = ${eps255(epsilon)}/255` }),
    ...parts);
}

/** The gradient-masking checks of the shown ε and those across ε; warnings first and marked. */
export function checksBlock(r, epsilon) {
  const checks = (r.checks || []).filter((c) => c.epsilon === undefined || c.epsilon === null || c.epsilon === epsilon)
    .sort((a, b) => Number(b.warning) - Number(a.warning));
  if (!checks.length) return null;
  const warnings = checks.filter((c) => c.warning).length;
  return el("section", { class: "report-block", "aria-labelledby": "rep-checks-title" },
    el("h3", { id: "rep-checks-title", text: `Gradient-masking checks at ε = ${eps255(epsilon)}/255 (${warnings ? `${warnings} warning${warnings > 1 ? "s" : ""}` : "no warning"})` }),
    el("ul", { class: "check-list", id: "rep-checks" }, checks.map((c) => el("li", { class: c.warning ? "check check-warning" : "check check-ok" },
      el("span", { class: `badge ${c.warning ? "badge-flag" : "badge-completed"}`, text: c.warning ? "warning" : "ok" }),
      " ", el("strong", { text: `${c.check} (${c.method})` }), el("span", { text: `: ${c.detail}` })))));
}
