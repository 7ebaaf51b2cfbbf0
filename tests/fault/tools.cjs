// Helpers of the fault scripts (tests/fault/*.sh), in Node because Node is needed anyway (Azurite, the SignalR client).
//   node tools.cjs pngs DIR N                   N Fashion-MNIST test images as DIR/00000.png … (28×28 grey PNGs)
//   node tools.cjs get PATH.TO.FIELD            prints a field of the JSON document on stdin (nothing when absent)
//   node tools.cjs verify URL KEY JOB N [CLIENT_SUMMARY.json]
//                                               checks the finished job through the HTTP API and prints PASS/FAIL lines:
//                                               state and counts, exactly one result per image, every artifact stored
//                                               (inputs, result records, audit records of flagged images), and, with a
//                                               live client's summary, that the client ended with the same results.
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const [command, ...args] = process.argv.slice(2);

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function png(pixels, w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 0; // 8-bit greyscale
  const raw = Buffer.alloc((w + 1) * h);
  for (let y = 0; y < h; y++) pixels.copy(raw, y * (w + 1) + 1, y * w, (y + 1) * w);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

function pngs(dir, n) {
  const source = path.join(process.env.TAPT_FASHION_MNIST || "/usr/share/datasets/fashion-mnist", "t10k-images-idx3-ubyte.gz");
  if (!fs.existsSync(source)) throw new Error(`${source} is missing (apt-get install dataset-fashion-mnist, or set TAPT_FASHION_MNIST)`);
  const idx = zlib.gunzipSync(fs.readFileSync(source));
  const count = idx.readUInt32BE(4), h = idx.readUInt32BE(8), w = idx.readUInt32BE(12);
  if (n > count) throw new Error(`the test split has ${count} images, ${n} asked`);
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const px = idx.subarray(16 + i * w * h, 16 + (i + 1) * w * h);
    fs.writeFileSync(path.join(dir, `${String(i).padStart(5, "0")}.png`), png(px, w, h));
  }
}

function get(field) {
  let v = JSON.parse(fs.readFileSync(0, "utf8"));
  for (const k of field.split(".")) v = v?.[k];
  if (v !== undefined && v !== null) console.log(typeof v === "object" ? JSON.stringify(v) : v);
}

async function verify(url, key, job, n, clientSummary) {
  let failed = 0;
  const pass = (m) => console.log(`PASS: ${m}`);
  const fail = (m) => { console.log(`FAIL: ${m}`); failed++; };
  const check = (ok, m, detail = "") => (ok ? pass(m) : fail(detail ? `${m} (${detail})` : m));
  let throttled = 0;
  const api = async (p) => {
    let r;
    // The tenant's request rate limit answers 429 with Retry-After: wait as told.
    while ((r = await fetch(url + p, { headers: { "X-Api-Key": key } })).status === 429) {
      throttled++;
      await new Promise((resolve) => setTimeout(resolve, 1000 * Number(r.headers.get("retry-after") || 1)));
    }
    if (!r.ok) throw new Error(`GET ${p}: ${r.status} ${await r.text()}`);
    return r.headers.get("content-type")?.includes("json") ? r.json() : r.text();
  };

  const status = await api(`/api/jobs/${job}`);
  check(status.state === "completed", "the job completed", `state ${status.state}`);
  check(status.counts.total === n && status.counts.completed === n, `counts: ${status.counts.completed} of ${status.counts.total} images have a result`);

  // Every result page: each index 0..n-1 exactly once.
  const results = [];
  let offset = 0;
  while (offset !== null && offset !== undefined) {
    const page = await api(`/api/jobs/${job}/results?offset=${offset}&limit=1000`);
    results.push(...page.items);
    offset = page.nextOffset;
  }
  const perIndex = new Map();
  for (const r of results) perIndex.set(r.index, (perIndex.get(r.index) ?? 0) + 1);
  const missing = [...Array(n).keys()].filter((i) => !perIndex.has(i));
  const repeated = [...perIndex].filter(([, c]) => c > 1).map(([i]) => i);
  const stray = [...perIndex.keys()].filter((i) => i < 0 || i >= n);
  check(results.length === n && missing.length === 0 && repeated.length === 0 && stray.length === 0,
    `exactly one result per image (${results.length} results, ${perIndex.size} distinct indices)`,
    `missing ${missing.slice(0, 10)}, repeated ${repeated.slice(0, 10)}, out of range ${stray.slice(0, 10)}`);
  const errors = results.filter((r) => r.error);
  check(errors.length === 0, `every image succeeded (${n - errors.length} succeeded, ${errors.length} failed)`,
    errors.slice(0, 5).map((r) => `#${r.index}: ${r.error}`).join("; "));
  const flagged = results.filter((r) => r.flagged).map((r) => r.index).sort((a, b) => a - b);

  // The blobs: inputs, result records and audit records (flagged images only), one of each per index.
  const artifacts = await api(`/api/jobs/${job}/artifacts`);
  const byKind = {};
  for (const a of artifacts) {
    const index = Number(a.name.slice(a.name.lastIndexOf("/") + 1));
    (byKind[a.kind] ??= []).push({ index, size: a.size });
  }
  const same = (list, expected) => {
    const got = (list ?? []).map((a) => a.index).sort((a, b) => a - b);
    return got.length === expected.length && got.every((v, i) => v === expected[i]) && (list ?? []).every((a) => a.size > 0);
  };
  const all = [...Array(n).keys()];
  check(same(byKind.inputs, all), `every input image is stored (${byKind.inputs?.length ?? 0} input blobs)`);
  check(same(byKind.results, all), `every result record is stored (${byKind.results?.length ?? 0} result blobs)`);
  check(same(byKind.audit ?? [], flagged), `an audit record for each of the ${flagged.length} flagged images and no other (${byKind.audit?.length ?? 0} audit blobs)`);

  // Each stored record agrees with the listed result (the one that stands is the one stored).
  const listed = new Map(results.map((r) => [r.index, r]));
  let disagree = [], auditBad = [];
  for (const i of all.filter((i) => listed.has(i))) {
    const d = await api(`/api/jobs/${job}/results/${i}`);
    const l = listed.get(i);
    if (d.summary.index !== i || d.summary.prediction !== l.prediction || d.summary.baselinePrediction !== l.baselinePrediction
      || (d.summary.error ?? null) !== (l.error ?? null)) disagree.push(i);
  }
  for (const i of flagged) {
    const body = await api(`/api/audit/${job}/${i}/download`);
    const a = typeof body === "string" ? JSON.parse(body) : body;
    if (a.imageIndex !== i || a.jobId !== job || a.result?.prediction !== listed.get(i).prediction) auditBad.push(i);
  }
  check(disagree.length === 0, `each of the ${n} result records matches its listed result`, `differ: ${disagree.slice(0, 10)}`);
  check(auditBad.length === 0, `each of the ${flagged.length} audit records belongs to its image and matches its result`, `differ: ${auditBad.slice(0, 10)}`);

  if (clientSummary) {
    const c = JSON.parse(fs.readFileSync(clientSummary, "utf8"));
    check(c.finalState === "completed" && c.completed === n, `the live client saw the final state (${c.finalState}, ${c.completed}/${c.total})`);
    const labels = c.results ?? {};
    const diff = all.filter((i) => listed.has(i) && labels[i] !== (listed.get(i).label ?? null));
    check(Object.keys(labels).length === n && diff.length === 0, `the live client holds the same ${n} results as the API (${Object.keys(labels).length} held)`,
      `differ or missing: ${diff.slice(0, 10)}`);
  }
  console.log(JSON.stringify({ verified: { throttled, results: results.length, flagged: flagged.length, artifacts: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, v.length])) } }));
  return failed;
}

(async () => {
  switch (command) {
    case "pngs": pngs(args[0], Number(args[1])); break;
    case "get": get(args[0]); break;
    case "verify": process.exitCode = (await verify(args[0], args[1], args[2], Number(args[3]), args[4])) ? 1 : 0; break;
    default: console.error("usage: tools.cjs pngs DIR N | get FIELD | verify URL KEY JOB N [CLIENT_SUMMARY]"); process.exitCode = 2;
  }
})().catch((e) => { console.error(String(e && e.stack || e)); process.exitCode = 1; });
