using System.Diagnostics;
using TaptPlatform.Contracts;
using TaptPlatform.Vision.Prompts;

namespace TaptPlatform.Grains.Tuning;

/// <summary>
/// One queued image: the request, the model it runs on, the vocabulary its reference resolved to, a step callback and
/// the promise of its outcome.
/// </summary>
public sealed class TuningWorkItem(string model, TuningRequest request, LabelVocabulary vocabulary, Action<StepMetrics>? onStep = null,
    string? artifactFile = null)
{
    public string Model { get; } = model;
    public TuningRequest Request { get; } = request;

    /// <summary>The labels and prompt texts of <see cref="TuningRequest.Vocabulary"/> (its hash is this vocabulary's key).</summary>
    public LabelVocabulary Vocabulary { get; } = vocabulary.Key == request.Vocabulary.Sha256 ? vocabulary
        : throw new ArgumentException("the vocabulary does not match the request's reference", nameof(vocabulary));

    /// <summary>The local copy of the tenant's own artifact the settings name (checked against its checksum), or null.</summary>
    public string? ArtifactFile { get; } = artifactFile;

    /// <summary>Called on the tuning thread after each step: must return at once (post, never block).</summary>
    public Action<StepMetrics>? OnStep { get; } = onStep;

    /// <summary>The trace context of the call that queued the image (its batch's span joins that trace).</summary>
    public ActivityContext ParentContext { get; } = Activity.Current?.Context ?? default;

    /// <summary>Completed off the tuning thread (continuations run asynchronously).</summary>
    public TaskCompletionSource<TuningReply> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Images that may share one <c>Classify</c> call: same model, artifact, settings and vocabulary.</summary>
    public string BatchKey { get; } = string.Join('\u001e', model, request.Settings.PromptArtifact ?? "", request.Settings.Design ?? "",
        request.Settings.Views?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "",
        request.Settings.Steps?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "",
        request.Settings.LearningRate?.ToString("R", System.Globalization.CultureInfo.InvariantCulture) ?? "",
        request.Vocabulary.Sha256,
        request.Settings.PromptArtifactVersion is null ? "" : request.TenantId + "/" + request.Settings.PromptArtifactVersion + "/" + request.Settings.PromptArtifactSha256);

    public string JobKey => JobKeyOf(Request.TenantId, Request.JobId);

    public static string JobKeyOf(string tenantId, string jobId) => tenantId + "/" + jobId;
}
