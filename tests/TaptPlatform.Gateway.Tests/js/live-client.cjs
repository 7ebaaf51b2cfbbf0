// Follows one job with the official JavaScript SignalR client (@microsoft/signalr), as a browser or a Node service
// would, and prints what it saw as JSON lines. Used by JsClientTests:
//   SIGNALR_MODULE=.tools/signalr/node_modules/@microsoft/signalr node live-client.cjs BASE_URL API_KEY JOB_ID [FOREIGN_JOB_ID]
"use strict";
const signalR = require(process.env.SIGNALR_MODULE || "@microsoft/signalr");
const [baseUrl, apiKey, jobId, foreignJobId] = process.argv.slice(2);
const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");

async function main() {
  const seen = { steps: 0, stepImages: new Set(), results: [], progress: [], resync: 0 };
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${baseUrl}/hubs/jobs`, { accessTokenFactory: () => apiKey })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  let finished;
  const done = new Promise((resolve) => { finished = resolve; });
  connection.on("steps", (batch) => {
    for (const s of batch) {
      if (s.jobId !== jobId || !Array.isArray(s.topK) || typeof s.totalLoss === "undefined") throw new Error("malformed step event");
      seen.steps++;
      seen.stepImages.add(s.imageIndex);
    }
  });
  connection.on("imagesCompleted", (batch) => { for (const e of batch) seen.results.push({ index: e.result.index, label: e.result.label, baselineLabel: e.result.baselineLabel, flagged: e.result.flagged }); });
  connection.on("jobProgress", (p) => {
    seen.progress.push(p);
    if (p.state === "completed" || p.state === "cancelled") finished();
  });
  connection.on("resync", () => { seen.resync++; });
  await connection.start();

  let foreignError = null;
  if (foreignJobId) {
    try { await connection.invoke("Subscribe", foreignJobId); } catch (e) { foreignError = String(e.message || e); }
  }
  const snapshot = await connection.invoke("Subscribe", jobId);
  print({ event: "subscribed", transport: connection.connection?.transport?.constructor?.name ?? null, state: snapshot.job.state, total: snapshot.job.counts.total, labels: snapshot.labels.length, results: snapshot.results.length, foreignError });

  const timeout = setTimeout(() => finished(), 60_000);
  await done;
  clearTimeout(timeout);
  const last = seen.progress[seen.progress.length - 1] ?? null;
  print({
    event: "done", steps: seen.steps, stepImages: [...seen.stepImages].sort((a, b) => a - b), results: seen.results,
    progressEvents: seen.progress.length, last, throughputSeen: seen.progress.some((p) => typeof p.throughputPerSecond === "number"), resync: seen.resync,
  });
  await connection.stop();
}

main().catch((e) => { print({ event: "error", message: String(e && e.stack || e) }); process.exit(1); });
