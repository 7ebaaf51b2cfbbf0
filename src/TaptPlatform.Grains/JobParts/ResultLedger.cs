using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// A job's results in blob storage, the source of truth the job's state summarises: exactly one record per image
/// (created only if none exists, so the first record wins and a recomputation after a crash adopts it), an audit
/// record beside each flagged image's, and the adoption of records the state does not list yet.
/// </summary>
public sealed class ResultLedger(IArtifactStore store, string tenantId, string jobId)
{
    /// <summary>Stores an image's records; returns the summary that stands (an earlier activation's, if it recorded first).</summary>
    public async Task<ImageResult> RecordAsync(JobDefinition def, JobImageEntry entry, ImageResult summary, TuningOutcome? outcome)
    {
        var detail = new ImageResultDetail(summary, outcome);
        if (summary.Flagged)
            await store.PutAsync(tenantId, jobId, ArtifactKinds.Audit, summary.Index, ResultRecords.AuditRecord(def, entry, summary.Index, detail), "application/json");
        // Tuned prompts are kept for audits of flagged images only; the result record of every image omits them.
        if (outcome?.TunedPrompts is not null) detail = detail with { Outcome = outcome with { TunedPrompts = null } };
        if (await store.TryCreateAsync(tenantId, jobId, ArtifactKinds.Results, summary.Index, ResultRecords.Serialize(detail), "application/json"))
            return summary;
        var existing = await store.GetAsync(tenantId, jobId, ArtifactKinds.Results, summary.Index);
        return existing is null ? summary : ResultRecords.Deserialize(existing).Summary;
    }

    /// <summary>The results recorded in storage for images below <paramref name="imageCount"/> that <paramref name="known"/> lacks.</summary>
    public async Task<List<ImageResult>> UnlistedAsync(IReadOnlyDictionary<int, ImageResult> known, int imageCount, CancellationToken ct)
    {
        var found = new List<ImageResult>();
        foreach (var index in await store.ListIndicesAsync(tenantId, jobId, ArtifactKinds.Results, ct))
        {
            if (index >= imageCount || known.ContainsKey(index)) continue;
            if (await store.GetAsync(tenantId, jobId, ArtifactKinds.Results, index, ct) is { } data)
                found.Add(ResultRecords.Deserialize(data).Summary);
        }
        return found;
    }

    public async Task<ImageResultDetail> GetDetailAsync(int index) =>
        ResultRecords.Deserialize(await store.GetAsync(tenantId, jobId, ArtifactKinds.Results, index)
            ?? throw new TaptNotFoundException($"the result record of image {index} is missing"));

    public async Task<string> GetAuditRecordAsync(int index) =>
        (await store.GetAsync(tenantId, jobId, ArtifactKinds.Audit, index)
            ?? throw new TaptNotFoundException($"the audit record of image {index} is missing")).ToString();
}
