using System.Collections.Immutable;
using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>
/// A tenant (key: tenant id): its versioned label vocabularies, prompt configurations, hashed API keys and jobs.
/// Everything a tenant grain returns belongs to that tenant; nothing takes another tenant's id.
/// </summary>
public interface ITenantGrain : ITenantErasable
{
    /// <summary>Stores a new version of the named vocabulary (or returns the latest one if it is identical).</summary>
    Task<VocabularyVersion> PutVocabularyAsync(VocabularyDefinition definition);

    /// <summary>The given version of a vocabulary, or its latest; <see cref="TaptNotFoundException"/> when missing.</summary>
    Task<VocabularyVersion> GetVocabularyAsync(string name, int? version = null);

    Task<ImmutableArray<VocabularySummary>> ListVocabulariesAsync();

    /// <summary>Stores a new version of the named prompt configuration; returns it with its version number.</summary>
    Task<PromptConfiguration> PutPromptConfigurationAsync(PromptConfiguration configuration);

    /// <summary>The latest version of a prompt configuration; <see cref="TaptNotFoundException"/> when missing.</summary>
    Task<PromptConfiguration> GetPromptConfigurationAsync(string name);

    /// <summary>Creates an API key; the secret is returned once and only its SHA-256 hash is stored.</summary>
    Task<ApiKeyIssued> CreateApiKeyAsync(string name);

    /// <summary>The key's description when <paramref name="secret"/> is a live key of this tenant, else null.</summary>
    Task<ApiKeyInfo?> ValidateApiKeyAsync(string secret);

    Task RevokeApiKeyAsync(string keyId);

    Task<ImmutableArray<ApiKeyInfo>> ListApiKeysAsync();

    /// <summary>
    /// Creates a job pinned to the vocabulary version and prompt configuration the request names (both this
    /// tenant's). Add images with <see cref="IJobGrain.AddImagesAsync"/>, then start it.
    /// </summary>
    Task<JobStatus> CreateJobAsync(JobRequest request);

    /// <summary>This tenant's job ids, oldest first.</summary>
    Task<ImmutableArray<string>> ListJobsAsync();

    // ---- versions: listing and deletion ------------------------------------------------------------------------

    /// <summary>The version numbers of a vocabulary, oldest first; <see cref="TaptNotFoundException"/> when missing.</summary>
    Task<ImmutableArray<int>> ListVocabularyVersionsAsync(string name);

    /// <summary>
    /// Deletes one version of a vocabulary (or, with no version, all of them). A version that an unfinished (open or
    /// running) job uses is refused with <see cref="TaptConflictException"/>. Deleted version numbers are never reused.
    /// </summary>
    Task DeleteVocabularyAsync(string name, int? version = null);

    /// <summary>The latest version of each prompt configuration, by name.</summary>
    Task<ImmutableArray<PromptConfiguration>> ListPromptConfigurationsAsync();

    /// <summary>One version of a prompt configuration; <see cref="TaptNotFoundException"/> when missing.</summary>
    Task<PromptConfiguration> GetPromptConfigurationVersionAsync(string name, int version);

    /// <summary>The version numbers of a prompt configuration, oldest first.</summary>
    Task<ImmutableArray<int>> ListPromptConfigurationVersionsAsync(string name);

    /// <summary>
    /// Deletes one version of a prompt configuration (or all of them), refused with <see cref="TaptConflictException"/>
    /// while an unfinished job uses it.
    /// </summary>
    Task DeletePromptConfigurationAsync(string name, int? version = null);
}

/// <summary>
/// A classification job (key: job id) bound to one tenant at creation. Every call carries the caller's tenant id;
/// a different tenant gets <see cref="TaptNotFoundException"/>, exactly as for a job that does not exist.
/// </summary>
public interface IJobGrain : ITenantDataGrain
{
    /// <summary>How long an observer subscription lasts without renewal.</summary>
    static readonly TimeSpan ObserverExpiry = TimeSpan.FromMinutes(5);

    /// <summary>The most images one job can hold.</summary>
    const int MaxImages = 10_000;

    /// <summary>Binds a new job to its tenant and pinned definition (the tenant grain calls this).</summary>
    Task<JobStatus> CreateAsync(JobDefinition definition);

    /// <summary>
    /// Validates and stores the images as blobs, records them in the job's durable state, then acknowledges.
    /// Only while the job is open; at most <see cref="MaxImages"/> in all.
    /// </summary>
    Task<AddImagesReceipt> AddImagesAsync(string tenantId, ImmutableArray<JobImage> images);

    /// <summary>
    /// Seals the job and starts classifying its images. The start takes the job's running slots under
    /// <paramref name="limits"/> (none: counted, never refused) and throws <see cref="TaptQuotaException"/> when one
    /// is refused; the job's end (completed or cancelled) gives them back.
    /// </summary>
    Task<JobStatus> StartAsync(string tenantId, JobLimits? limits = null);

    /// <summary>Stops the job: images without a result are not classified.</summary>
    Task<JobStatus> CancelAsync(string tenantId);

    Task<JobStatus> GetStatusAsync(string tenantId);

    /// <summary>Results in image order, from <paramref name="offset"/>, at most <paramref name="count"/> (≤ 1000).</summary>
    Task<ResultPage> GetResultsAsync(string tenantId, int offset, int count);

    /// <summary>The full stored record of one image's result; <see cref="TaptNotFoundException"/> until it has one.</summary>
    Task<ImageResultDetail> GetResultDetailAsync(string tenantId, int imageIndex);

    /// <summary>The stored input image.</summary>
    Task<byte[]> GetInputImageAsync(string tenantId, int imageIndex);

    /// <summary>The audit record (JSON) of a flagged image; <see cref="TaptNotFoundException"/> when it was not flagged.</summary>
    Task<string> GetAuditRecordAsync(string tenantId, int imageIndex);

    /// <summary>The job's stored artifacts (inputs, results, audit records).</summary>
    Task<ImmutableArray<ArtifactInfo>> ListArtifactsAsync(string tenantId);

    /// <summary>
    /// Subscribes (or renews) a progress observer. True when this activation already had it (a renewal); false when it
    /// did not: a first subscription, or the job was reactivated since (its silo died, or it moved), so the events
    /// of the meantime never reached the observer.
    /// </summary>
    Task<bool> SubscribeAsync(string tenantId, IJobObserver observer);

    Task UnsubscribeAsync(string tenantId, IJobObserver observer);

    /// <summary>A model grain reports a finished tuning step (fire-and-forget; fanned out to observers).</summary>
    [OneWay, AlwaysInterleave]
    Task ReportStepAsync(string tenantId, ImageStepProgress progress);
}

/// <summary>
/// Runs TAPT for one model (key: model name in the accelerator silos' catalog). Placed only on silos whose
/// <c>accelerator</c> metadata is not <c>cpu-only</c>; it hands images to that silo's tuning engine, whose bounded
/// queue makes callers wait when it is full.
/// </summary>
public interface IModelGrain : IGrainWithStringKey
{
    /// <summary>Classifies one image with TAPT; completes when the engine has the result.</summary>
    [ResponseTimeout("00:30:00")]
    Task<TuningReply> TuneAsync(TuningRequest request);

    /// <summary>Drops the queued (not yet started) images of a job.</summary>
    Task CancelJobAsync(string tenantId, string jobId);

    /// <summary>Where this grain runs and its engine's counters.</summary>
    Task<ModelHostInfo> DescribeAsync();
}
