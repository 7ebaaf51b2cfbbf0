// The "browser client" of the fault scripts: follows one job over the gateway's SignalR hub (/hubs/jobs) with the
// official JavaScript client, exactly as the web console does (wwwroot/js/console.js): Subscribe(jobId) returns a
// snapshot, live events follow, and after an automatic reconnect it subscribes again and merges the fresh snapshot.
//   node live-client.cjs URL KEY JOB SUMMARY.json
// Prints one JSON line per connection event; when the job's final state has been seen (or TAPT_LIVE_DEADLINE seconds,
// default 3600, have passed) it writes SUMMARY.json: the results it holds (index → label), the final state, the
// reconnections and how long the connection was down. Meanwhile SUMMARY.json.status holds, rewritten every second,
// how many results it holds. Exit code 0 when it caught up with every result.
"use strict";
const fs = require("fs");
const path = require("path");

const signalR = require(process.env.SIGNALR_MODULE
  || path.join(__dirname, "../../.tools/signalr/node_modules/@microsoft/signalr"));
const [url, key, jobId, summaryFile] = process.argv.slice(2);
const deadline = Date.now() + 1000 * Number(process.env.TAPT_LIVE_DEADLINE || 3600);
// Reconnection: the console's policy (withAutomaticReconnect's default: after 0, 2, 10 and 30 s, then it gives up)
// unless TAPT_LIVE_RECONNECT_SECONDS asks to keep trying every few seconds for that long.
const reconnectFor = 1000 * Number(process.env.TAPT_LIVE_RECONNECT_SECONDS || 0);
const t0 = Date.now();
const log = (o) => process.stdout.write(JSON.stringify({ t: +((Date.now() - t0) / 1000).toFixed(1), ...o }) + "\n");

const seen = {
  results: new Map(), progress: null, snapshots: 0, reconnecting: 0, reconnected: 0, closed: 0, outages: [],
  events: { steps: 0, imagesCompleted: 0, jobProgress: 0, resync: 0 }, repeatedResults: 0, conflictingResults: [],
};
let downSince = null, finished, finalSeenAt = null;
const done = new Promise((resolve) => { finished = resolve; });

function applyResult(r) {
  const previous = seen.results.get(r.index);
  if (previous === undefined) seen.results.set(r.index, r.label ?? null);
  else if (previous === (r.label ?? null)) seen.repeatedResults++; // the same final result again (snapshot/event overlap)
  else seen.conflictingResults.push({ index: r.index, before: previous, after: r.label });
}

function applyProgress(p) {
  // Events may race the snapshot: keep the progress with the most completed images (a final state wins).
  const final = (s) => s === "completed" || s === "cancelled";
  if (!seen.progress || p.completed > seen.progress.completed || (final(p.state) && !final(seen.progress.state))) seen.progress = p;
  if (final(seen.progress.state) && finalSeenAt === null) finalSeenAt = Date.now();
  check();
}

function check() {
  const p = seen.progress;
  if (p && finalSeenAt !== null && seen.results.size >= p.total) finished();
}

const builder = new signalR.HubConnectionBuilder().withUrl(`${url}/hubs/jobs`, { accessTokenFactory: () => key });
const connection = (reconnectFor > 0
  ? builder.withAutomaticReconnect({
    nextRetryDelayInMilliseconds: (ctx) => (ctx.elapsedMilliseconds < reconnectFor ? Math.min(1000 * (ctx.previousRetryCount + 1), 5000) : null),
  })
  : builder.withAutomaticReconnect())
  .configureLogging(signalR.LogLevel.None)
  .build();

connection.on("steps", (batch) => { seen.events.steps += batch.length; });
connection.on("imagesCompleted", (batch) => {
  seen.events.imagesCompleted += batch.length;
  for (const e of batch) if (e.jobId === jobId) applyResult(e.result);
  check();
});
connection.on("jobProgress", (p) => { seen.events.jobProgress++; if (p.jobId === jobId) applyProgress(p); });
connection.on("resync", (e) => {
  seen.events.resync++;
  log({ event: "resync", reason: e.reason, held: seen.results.size });
  if (e.jobId === jobId) subscribe("resync").catch((x) => log({ event: "error", message: String(x) }));
});
connection.onreconnecting((e) => {
  seen.reconnecting++;
  downSince ??= Date.now();
  log({ event: "reconnecting", error: e ? String(e.message || e) : null, held: seen.results.size });
});
connection.onreconnected(async () => {
  seen.reconnected++;
  const down = downSince === null ? 0 : (Date.now() - downSince) / 1000;
  seen.outages.push(+down.toFixed(1));
  downSince = null;
  log({ event: "reconnected", downSeconds: +down.toFixed(1), connectionId: connection.connectionId });
  try {
    await subscribe("reconnected");
  } catch (e) {
    log({ event: "error", message: `subscribe after reconnect: ${e.message || e}` });
  }
});
connection.onclose((e) => {
  seen.closed++;
  log({ event: "closed", error: e ? String(e.message || e) : null });
  finished();
});

async function subscribe(why) {
  const before = seen.results.size;
  const snapshot = await connection.invoke("Subscribe", jobId);
  seen.snapshots++;
  for (const r of snapshot.results) applyResult(r);
  const j = snapshot.job;
  log({ event: "snapshot", why, state: j.state, completed: j.counts.completed, total: j.counts.total, snapshotResults: snapshot.results.length, held: seen.results.size, new: seen.results.size - before });
  applyProgress({ jobId, state: j.state, total: j.counts.total, completed: j.counts.completed });
}

(async () => {
  await connection.start();
  log({ event: "connected", connectionId: connection.connectionId });
  await subscribe("start");
  // SUMMARY.json.status: what the client holds now, rewritten every second (the fault scripts compare it with the API).
  const timer = setInterval(() => {
    fs.writeFileSync(`${summaryFile}.status`, JSON.stringify({ held: seen.results.size, completed: seen.progress?.completed ?? 0, state: connection.state }));
    if (Date.now() > deadline) finished();
  }, 1000);
  await done;
  // A final state may arrive just before the last results' batch: give the batch a moment.
  for (let i = 0; i < 50 && seen.progress && seen.results.size < seen.progress.total && connection.state === "Connected"; i++) {
    await new Promise((r) => setTimeout(r, 200));
  }
  clearInterval(timer);
  const p = seen.progress ?? {};
  const summary = {
    finalState: p.state ?? null, total: p.total ?? null, completed: p.completed ?? null, held: seen.results.size,
    snapshots: seen.snapshots, reconnecting: seen.reconnecting, reconnected: seen.reconnected, closed: seen.closed, outages: seen.outages,
    events: seen.events, repeatedResults: seen.repeatedResults, conflictingResults: seen.conflictingResults,
    results: Object.fromEntries([...seen.results].sort((a, b) => a[0] - b[0])),
  };
  fs.writeFileSync(summaryFile, JSON.stringify(summary));
  const { results, ...brief } = summary;
  log({ event: "summary", ...brief });
  await connection.stop().catch(() => {});
  process.exit(summary.finalState === "completed" && summary.held === summary.total && summary.conflictingResults.length === 0 ? 0 : 1);
})().catch((e) => { log({ event: "error", message: String(e && e.stack || e) }); process.exit(1); });
