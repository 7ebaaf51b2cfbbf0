using System.Collections.Immutable;
using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Grains.Evaluation;

/// <summary>
/// Runs an evaluation's ε runs on an accelerator silo (key: model name). The attack and the defended predictions run on the
/// silo's <see cref="EvaluationEngine"/> thread through <see cref="RobustnessEvaluator"/> exactly as <c>tapt eval</c> does
/// (same batches, same generator, same TAPT seeds); after each batch the adversarial images are encoded there, then stored
/// from this grain's context next to their clean originals, and the batch's outcomes are recorded by the job grain.
/// </summary>
[AcceleratorPlacementFilter]
[Reentrant]
public sealed class EvaluationWorkerGrain(IServiceProvider services, IArtifactStore store, ILocalSiloDetails silo, ILogger<EvaluationWorkerGrain> log)
    : Grain, IEvaluationWorkerGrain
{
    /// <summary>The informational version of the ML core library that computed a report.</summary>
    public static string EngineVersion { get; } =
        typeof(RobustnessEvaluator).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    private sealed record PreparedBatch(ImmutableArray<EvaluationImageOutcome> Outcomes, List<(string Path, byte[] Bytes, string Type)> Files);

    public async Task<EvaluationRunInfo> RunAsync(EvaluationWork work, CancellationToken cancellation = default)
    {
        Identifiers.RequireTenantId(work.TenantId);
        Identifiers.RequireJobId(work.JobId);
        var engine = services.GetService<EvaluationEngine>()
            ?? throw new InvalidOperationException($"silo {silo.SiloAddress} has no evaluation engine (cpu-only?)");
        var catalog = services.GetRequiredService<ModelCatalog>();
        var inputs = new byte[work.ImageLabels.Length][];
        for (var i = 0; i < inputs.Length; i++)
            inputs[i] = (await store.GetAsync(work.TenantId, work.JobId, ArtifactKinds.Inputs, i))?.ToArray()
                ?? throw new TaptRequestException($"the stored image {i} is missing");

        var batches = Channel.CreateUnbounded<PreparedBatch>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var job = GrainFactory.GetGrain<IEvaluationJobGrain>(work.JobId);
        var forwarding = ForwardAsync(batches.Reader, work, job);
        EvaluationRunInfo info;
        try
        {
            info = await engine.RunAsync(() => Evaluate(catalog, ComputeDevice.Parse(engine.Device), work, inputs, b => batches.Writer.TryWrite(b), cancellation), cancellation);
        }
        finally
        {
            batches.Writer.TryComplete();
        }
        await forwarding;
        log.LogInformation("Evaluation {Job} ε#{Eps} done on {Silo}: {Seconds:F2}s per image", work.JobId, work.EpsilonIndex, silo.SiloAddress, info.SecondsPerImage);
        return info with { Silo = silo.SiloAddress.ToString() };
    }

    private async Task ForwardAsync(ChannelReader<PreparedBatch> reader, EvaluationWork work, IEvaluationJobGrain job)
    {
        await foreach (var batch in reader.ReadAllAsync())
        {
            using var gate = new SemaphoreSlim(8);
            await Task.WhenAll(batch.Files.Select(async f =>
            {
                await gate.WaitAsync();
                try { await store.PutFileAsync(work.TenantId, work.JobId, f.Path, BinaryData.FromBytes(f.Bytes), f.Type); }
                finally { gate.Release(); }
            }));
            await job.RecordOutcomesAsync(work.TenantId, batch.Outcomes);
        }
    }

    /// <summary>Runs on the evaluation thread.</summary>
    private static EvaluationRunInfo Evaluate(ModelCatalog catalog, Device device, EvaluationWork work, byte[][] inputs, Action<PreparedBatch> onBatch,
        CancellationToken cancellation)
    {
        var cfg = work.Configuration;
        var req = work.Request;
        var model = catalog.Get(cfg.Model, device);          // loads once, outside any dispose scope
        var (artifactName, artifact) = model.Artifact(cfg.PromptArtifact);
        TaptOptions options;
        try
        {
            options = artifact.SettingsWith(cfg.Design, cfg.Views, cfg.Steps, cfg.LearningRate);
        }
        catch (ArgumentException e)
        {
            throw new TuningFailedException($"invalid test-time settings for artifact '{artifactName}': {e.Message}");
        }
        var pixels = new List<float[]>(inputs.Length);
        foreach (var (bytes, i) in inputs.Select((b, i) => (b, i)))
        {
            try { pixels.Add(model.Preprocessor.Load(bytes)); }
            catch (ImageRejectedException e) { throw new TaptRequestException($"image {i} cannot be decoded: {e.Message}"); }
        }
        var size = model.Clip.ImageSize;
        var data = new InMemoryImageDataset(work.Labels, pixels, work.ImageLabels, size);
        var vocabulary = new LabelVocabulary(work.Labels, work.PromptTexts);
        var epsilon = req.Epsilons[work.EpsilonIndex];
        var settings = new AttackSettings(AttackSettings.ParseKind(req.Attack), epsilon, req.Steps, req.StepSize, Restarts: req.Restarts);
        var protocol = req.Protocol == "adaptive" ? EvaluationProtocol.Adaptive : EvaluationProtocol.NonAdaptive;
        var skip = work.Skip.ToHashSet();
        var indices = EvaluationOrder(inputs.Length, req.Seed);
        var attackSettings = new JsonObject
        {
            ["attack"] = req.Attack,
            ["name"] = settings.Create().Name,
            ["epsilon"] = epsilon,
            ["steps"] = req.Steps,
            ["stepSize"] = settings.Alpha,
            ["restarts"] = req.Restarts,
            ["protocol"] = req.Protocol,
            ["eot"] = req.EotSamples,
            ["seed"] = req.Seed,
        };

        EvaluationReport report;
        using (var scope = NewDisposeScope())
        {
            using var defense = new TaptDefense(model.Clip, artifact, options);
            var evaluator = new RobustnessEvaluator(model.Clip, defense, vocabulary);
            report = evaluator.Evaluate(data, indices, new EvaluationOptions(settings, protocol, req.Seed, req.BatchSize, req.EotSamples) { Cancellation = cancellation }, null,
                batch => onBatch(Prepare(work, batch, skip, epsilon, attackSettings)));
        }
        return new EvaluationRunInfo(work.EpsilonIndex, epsilon, report.Attack, report.Gradient, model.Checkpoint.Checksum, artifactName,
            Sha256(Path.Combine(model.Checkpoint.Directory, artifactName)), PromptArtifact.FormatVersion, artifact.Shape.Design.ToString(),
            options.Views, options.Steps, options.LearningRate, EngineVersion, report.SecondsPerImage, "");
    }

    /// <summary>One evaluated batch's outcomes and the artifacts to store with them (skipping images already recorded).</summary>
    private static PreparedBatch Prepare(EvaluationWork work, EvaluationBatch batch, HashSet<int> skip, double epsilon, JsonObject attackSettings)
    {
        var perImage = batch.Seconds / Math.Max(1, batch.Outcomes.Count);
        var outcomes = batch.Outcomes.Select(o => new EvaluationImageOutcome(o.Index, work.EpsilonIndex, o.Label,
            o.ClipClean, o.AptClean, o.TaptClean, o.ClipRobust, o.AptRobust, o.TaptRobust, perImage)).ToImmutableArray();
        var files = new List<(string, byte[], string)>();
        for (var i = 0; i < outcomes.Length; i++)
        {
            var o = outcomes[i];
            if (skip.Contains(o.Index)) continue;
            var folder = ArtifactFolder(work.EpsilonIndex, o.Index);
            files.Add(($"{folder}/clean.png", ImageEncoding.EncodePng(batch.Clean[i], batch.Height, batch.Width), "image/png"));
            void Adversarial(string method, float[] adv)
            {
                files.Add(($"{folder}/{method}.png", ImageEncoding.EncodePng(adv, batch.Height, batch.Width), "image/png"));
                files.Add(($"{folder}/perturbation-{method}.png", ImageEncoding.EncodePng(Amplify(batch.Clean[i], adv, epsilon), batch.Height, batch.Width), "image/png"));
            }
            Adversarial("clip", batch.ClipAdversarial[i]);
            Adversarial("apt", batch.AptAdversarial[i]);
            if (batch.TaptAdversarial is { } t) Adversarial("tapt", t[i]);
            JsonObject Method(int clean, int robust, string image) => new()
            {
                ["clean"] = work.Labels[clean],
                ["robust"] = work.Labels[robust],
                ["cleanCorrect"] = clean == o.Label,
                ["robustCorrect"] = robust == o.Label,
                ["adversarialImage"] = image,
            };
            var record = new JsonObject
            {
                ["jobId"] = work.JobId,
                ["image"] = o.Index,
                ["label"] = work.Labels[o.Label],
                ["epsilonIndex"] = work.EpsilonIndex,
                ["settings"] = attackSettings.DeepClone(),
                ["original"] = $"inputs/{o.Index.ToString("D5", CultureInfo.InvariantCulture)}",
                ["clip"] = Method(o.ClipClean, o.ClipRobust, "clip.png"),
                ["apt"] = Method(o.AptClean, o.AptRobust, "apt.png"),
                ["tapt"] = Method(o.TaptClean, o.TaptRobust, batch.TaptAdversarial is null ? "apt.png" : "tapt.png"),
                ["perturbationAmplification"] = "0.5 + 0.5 * (adversarial - clean) / epsilon",
            };
            files.Add(($"{folder}/outcome.json", System.Text.Encoding.UTF8.GetBytes(record.ToJsonString()), "application/json"));
        }
        return new PreparedBatch(outcomes, files);
    }

    /// <summary>The order images are evaluated in: <c>tapt eval</c>'s sample order (<see cref="DatasetSampling.Sample"/>) for all of them.</summary>
    public static int[] EvaluationOrder(int count, int seed) => DatasetSampling.Sample(count, count, seed);

    public static string ArtifactFolder(int epsilonIndex, int index) =>
        $"{ArtifactKinds.Adversarial}/eps{epsilonIndex.ToString(CultureInfo.InvariantCulture)}/{index.ToString("D5", CultureInfo.InvariantCulture)}";

    /// <summary>The perturbation made visible: 0.5 + 0.5·(adv − clean)/ε (mid-grey = unchanged, full swing at ±ε).</summary>
    public static float[] Amplify(float[] clean, float[] adversarial, double epsilon)
    {
        var scale = epsilon > 0 ? 0.5 / epsilon : 0;
        var r = new float[clean.Length];
        for (var i = 0; i < r.Length; i++) r[i] = (float)Math.Clamp(0.5 + (adversarial[i] - clean[i]) * scale, 0, 1);
        return r;
    }

    private static readonly Dictionary<string, (DateTime Written, string Hash)> Hashes = new(StringComparer.Ordinal);

    private static string Sha256(string path)
    {
        var written = File.GetLastWriteTimeUtc(path);
        lock (Hashes)
        {
            if (Hashes.TryGetValue(path, out var h) && h.Written == written) return h.Hash;
            using var f = File.OpenRead(path);
            var hash = Convert.ToHexStringLower(SHA256.HashData(f));
            Hashes[path] = (written, hash);
            return hash;
        }
    }
}
