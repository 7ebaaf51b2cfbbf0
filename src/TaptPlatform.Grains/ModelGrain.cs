using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Models;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tuning;

namespace TaptPlatform.Grains;

/// <summary>
/// Runs TAPT for one model on an accelerator silo. Reentrant: many images wait on the silo's tuning engine at once;
/// when its queue is full, <see cref="TuneAsync"/> waits, and so does the calling job grain. Step reports arrive on
/// the tuning threads; they are posted to a small bounded channel (dropping the oldest when a job's observers are
/// slow) and forwarded to the job grains from this grain's own context.
/// </summary>
[AcceleratorPlacementFilter]
[Reentrant]
public sealed class ModelGrain(IServiceProvider services, ILocalSiloDetails silo, ILogger<ModelGrain> log) : Grain, IModelGrain
{
    private TuningEngine? _engine;
    private SiloRoleInfo? _role;
    private Channel<(string TenantId, ImageStepProgress Progress)>? _steps;
    private Task? _forwarder;

    /// <summary>The catalog name of the model (the key without its shard suffix).</summary>
    private string Model => ModelOf(this.GetPrimaryKeyString());

    /// <summary>
    /// The model grain a job uses: the model's name, or with <paramref name="shards"/> &gt; 1 one of
    /// <c>{model}@{n}</c> chosen by a stable hash of the job id, so several accelerator silos share a model's work.
    /// </summary>
    public static string KeyFor(string model, string jobId, int shards)
    {
        if (shards <= 1) return model;
        var hash = 2166136261u;
        foreach (var c in jobId) hash = (hash ^ c) * 16777619u;
        return $"{model}@{hash % (uint)shards}";
    }

    /// <summary>The model name in a model grain key.</summary>
    public static string ModelOf(string key) => key.IndexOf('@') is var at and >= 0 ? key[..at] : key;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _engine = services.GetService<TuningEngine>()
            ?? throw new InvalidOperationException($"model grain '{Model}' activated on silo {silo.SiloAddress}, which has no tuning engine (accelerator role cpu-only?)");
        _role = services.GetService<SiloRoleInfo>();
        _steps = Channel.CreateBounded<(string, ImageStepProgress)>(new BoundedChannelOptions(1024)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        });
        _forwarder = ForwardStepsAsync(_steps.Reader);
        log.LogInformation("Model grain {Model} active on {Silo}", Model, silo.SiloAddress);
        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _steps?.Writer.TryComplete();
        if (_forwarder is null) return;
        try
        {
            await _forwarder.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // Step reports are best-effort.
        }
    }

    public async Task<TuningReply> TuneAsync(TuningRequest request)
    {
        Identifiers.RequireTenantId(request.TenantId);
        Identifiers.RequireJobId(request.JobId);
        var reference = request.Vocabulary ?? throw new TaptRequestException("a tuning request needs a vocabulary");
        if (reference.TenantId != request.TenantId) throw new TaptRequestException("a tuning request names another tenant's vocabulary");
        // The texts come from the tenant grain once per reference and silo, not with every image.
        var vocabulary = await _engine!.Vocabularies.GetAsync(reference,
            r => GrainFactory.GetGrain<ITenantGrain>(r.TenantId).GetVocabularyAsync(r.Name, r.Version));
        if (request.ImageStored)
        {
            // A large input is read here, from the job's own blob, rather than carried in the request.
            var store = services.GetRequiredService<IArtifactStore>();
            if (await store.GetAsync(request.TenantId, request.JobId, ArtifactKinds.Inputs, request.ImageIndex) is not { } stored)
                return new TuningReply.Failed(request.ImageIndex, TuningReply.MissingInput);
            request = request with { Image = stored.ToArray(), ImageStored = false };
        }
        // A registered model is fetched to this silo once (checked against the registry's checksums) before its first image.
        await services.GetRequiredService<RegisteredModels>().EnsureAsync(Model);
        var writer = _steps!.Writer;
        Action<StepMetrics>? onStep = request.ReportSteps
            ? m => writer.TryWrite((request.TenantId, new ImageStepProgress(request.JobId, request.ImageIndex, m)))
            : null;
        // A tenant's own artifact is fetched to this silo (once, checked) and held until the image is tuned.
        using var artifact = request.Settings.TenantArtifact(request.TenantId) is { } artifactReference
            ? await services.GetRequiredService<TenantArtifactCache>().GetAsync(artifactReference)
            : null;
        return await _engine.EnqueueAsync(new TuningWorkItem(Model, request, vocabulary, onStep, artifact?.Path));
    }

    public Task CancelJobAsync(string tenantId, string jobId)
    {
        _engine!.CancelJob(Identifiers.RequireTenantId(tenantId), Identifiers.RequireJobId(jobId));
        return Task.CompletedTask;
    }

    public Task<ModelHostInfo> DescribeAsync()
    {
        var e = _engine!;
        return Task.FromResult(new ModelHostInfo(Model, silo.SiloAddress.ToString(), _role?.Accelerator ?? "?", e.Options.Device,
            e.Options.Threads, e.Options.QueueCapacity, e.Options.MaxBatchSize, e.BatchesRun, e.ImagesRun, e.LargestBatch, e.Catalog.IsLoaded(Model)));
    }

    private async Task ForwardStepsAsync(ChannelReader<(string TenantId, ImageStepProgress Progress)> reader)
    {
        await foreach (var (tenantId, progress) in reader.ReadAllAsync())
        {
            try
            {
                await GrainFactory.GetGrain<IJobGrain>(progress.JobId).ReportStepAsync(tenantId, progress);
            }
            catch (Exception e)
            {
                log.LogDebug(e, "Step report for job {Job} not delivered", progress.JobId);
            }
        }
    }
}

/// <summary>This silo's role, as published in its metadata.</summary>
public sealed record SiloRoleInfo(string Accelerator, string Device);
