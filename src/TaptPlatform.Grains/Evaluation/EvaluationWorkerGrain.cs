using System.Collections.Immutable;
using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Models;
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
/// The evaluation executor of one accelerator silo (key: that silo's address; <see cref="SiloKeyedPlacement"/> puts it
/// there, so every accelerator silo has one). Evaluations are split into units of one batch at one ε; each unit runs on the
/// silo's <see cref="EvaluationEngine"/> thread, whose queue serves the tenants in turn, through
/// <see cref="RobustnessEvaluator.EvaluateBatch"/> exactly as <c>tapt eval</c> runs that batch (same order, same generator
/// stream carried from the batch before, same TAPT seeds). The adversarial images are encoded there, then stored from this
/// grain's context next to their clean originals, and the unit's outcomes are recorded by the evaluation grain.
/// </summary>
[SiloKeyedPlacement]
[Reentrant]
public sealed class EvaluationWorkerGrain(IServiceProvider services, IArtifactStore store, ILocalSiloDetails silo, ILogger<EvaluationWorkerGrain> log)
    : Grain, IEvaluationWorkerGrain
{
    /// <summary>The informational version of the ML core library that computed a report.</summary>
    public static string EngineVersion { get; } =
        typeof(RobustnessEvaluator).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    private sealed record PreparedBatch(ImmutableArray<EvaluationImageOutcome> Outcomes, List<(string Path, byte[] Bytes, string Type)> Files);

    private sealed record UnitDone(PreparedBatch Batch, EvaluationUnitResult Result);

    public async Task<EvaluationUnitResult> RunAsync(EvaluationUnit unit, CancellationToken cancellation = default)
    {
        var work = unit.Work;
        Identifiers.RequireTenantId(work.TenantId);
        Identifiers.RequireJobId(work.JobId);
        var engine = services.GetService<EvaluationEngine>()
            ?? throw new InvalidOperationException($"silo {silo.SiloAddress} has no evaluation engine (cpu-only?)");
        var catalog = engine.Catalog;
        var inputs = new Dictionary<int, byte[]>();
        foreach (var i in unit.Images)
        {
            if (i < 0 || i >= work.ImageLabels.Length) throw new TaptRequestException($"image {i} is not one of the evaluation's");
            inputs[i] = (await store.GetAsync(work.TenantId, work.JobId, ArtifactKinds.Inputs, i))?.ToArray()
                ?? throw new TaptRequestException($"the stored image {i} is missing");
        }
        await services.GetRequiredService<RegisteredModels>().EnsureAsync(work.Configuration.Model, cancellation);
        using var tenantArtifact = TuningSettings.From(work.Configuration).TenantArtifact(work.TenantId) is { } reference
            ? await services.GetRequiredService<TenantArtifactCache>().GetAsync(reference, cancellation)
            : null;
        var done = await engine.RunAsync(work.TenantId, token => Evaluate(catalog, ComputeDevice.Parse(engine.Device), unit, inputs, tenantArtifact?.Path, token), cancellation);
        using (var gate = new SemaphoreSlim(8))
        {
            await Task.WhenAll(done.Batch.Files.Select(async f =>
            {
                await gate.WaitAsync(cancellation);
                try { await store.PutFileAsync(work.TenantId, work.JobId, f.Path, BinaryData.FromBytes(f.Bytes), f.Type); }
                finally { gate.Release(); }
            }));
        }
        await GrainFactory.GetGrain<IEvaluationJobGrain>(work.JobId).RecordOutcomesAsync(work.TenantId, done.Batch.Outcomes);
        log.LogDebug("Evaluation {Job} ε#{Eps} batch {Batch} done on {Silo}", work.JobId, work.EpsilonIndex, unit.Batch, silo.SiloAddress);
        return done.Result with { Info = done.Result.Info with { Silo = silo.SiloAddress.ToString() } };
    }

    /// <summary>Runs on the evaluation thread: one batch at one ε, from the cursor the unit carries.</summary>
    private static UnitDone Evaluate(ModelCatalog catalog, Device device, EvaluationUnit unit, Dictionary<int, byte[]> inputs, string? tenantArtifactFile,
        CancellationToken cancellation)
    {
        var work = unit.Work;
        var cfg = work.Configuration;
        var req = work.Request;
        using var modelLease = catalog.Rent(cfg.Model, device);          // loads once, outside any dispose scope
        var model = modelLease.Value;
        // A tenant's own artifact is leased from the model's bounded cache for this unit; an operator's is loaded once.
        var reference = TuningSettings.From(cfg).TenantArtifact(work.TenantId);
        using var tenantArtifact = reference is null ? null
            : model.TenantArtifact(reference, tenantArtifactFile ?? throw new TuningFailedException($"prompt artifact '{reference.DisplayName}' was not fetched to this silo", transient: true));
        var (artifactName, artifact) = tenantArtifact is null ? model.Artifact(cfg.PromptArtifact) : (reference!.DisplayName, tenantArtifact.Value.Artifact);
        var artifactSha256 = reference?.Sha256 ?? Sha256(Path.Combine(model.Checkpoint.Directory, artifactName));
        TaptOptions options;
        try
        {
            options = artifact.SettingsWith(cfg.Design, cfg.Views, cfg.Steps, cfg.LearningRate);
        }
        catch (ArgumentException e)
        {
            throw new TuningFailedException($"invalid test-time settings for artifact '{artifactName}': {e.Message}");
        }
        var size = model.Clip.ImageSize;
        // The dataset is indexed as the whole evaluation's (seeds and outcomes use those indices); only this batch's images are decoded.
        var blank = new float[3 * size * size];
        var pixels = Enumerable.Repeat(blank, work.ImageLabels.Length).ToArray();
        foreach (var (i, bytes) in inputs)
        {
            try { pixels[i] = model.Preprocessor.Load(bytes); }
            catch (ImageRejectedException e) { throw new TaptRequestException($"image {i} cannot be decoded: {e.Message}"); }
        }
        var data = new InMemoryImageDataset(work.Labels, pixels, work.ImageLabels, size);
        var epsilon = req.Epsilons[work.EpsilonIndex];
        var kind = AttackSettings.ParseKind(req.Attack);
        var settings = new AttackSettings(kind, epsilon, req.Steps, req.StepSize, Restarts: req.Restarts, Queries: req.Queries);
        var protocol = req.Protocol == "adaptive" ? EvaluationProtocol.Adaptive : EvaluationProtocol.NonAdaptive;
        // As tapt eval: AutoAttack's version for randomised defenses draws at least its 20 EOT samples.
        var eot = kind == AttackKind.AutoAttackRand ? Math.Max(req.EotSamples, AutoAttack.RandomisedEotSamples) : req.EotSamples;
        var evaluationOptions = new EvaluationOptions(settings, protocol, req.Seed, req.BatchSize, eot) { Cancellation = cancellation };

        using var cursor = EvaluationCursor.Restore(req.Seed, unit.Cursor, unit.EotCalls);
        PreparedBatch prepared;
        using (var scope = NewDisposeScope())
        {
            using var defense = new TaptDefense(model.Clip, artifact, options);
            var evaluator = new RobustnessEvaluator(model.Clip, defense, new LabelVocabulary(work.Labels, work.PromptTexts));
            // The gradient check as tapt eval makes it (through the defense it also advances the tuning-call count, as there).
            var gradients = new GradientTally();
            var batch = evaluator.EvaluateBatch(data, [.. unit.Images], evaluationOptions, cursor, withPixels: true, gradients);
            prepared = Prepare(work, batch, gradients, work.Skip.ToHashSet(), epsilon, AttackSettingsRecord(req, settings, epsilon, eot));
        }
        var perImage = prepared.Outcomes.Length == 0 ? 0 : prepared.Outcomes[0].Seconds;
        var info = new EvaluationRunInfo(work.EpsilonIndex, epsilon, settings.Create().Name, RobustnessEvaluator.GradientOf(evaluationOptions), model.Checkpoint.Checksum,
            artifactName, artifactSha256, PromptArtifact.FormatVersion, artifact.Shape.Design.ToString(),
            options.Views, options.Steps, options.LearningRate, EngineVersion, perImage, "");
        return new UnitDone(prepared, new EvaluationUnitResult(info, cursor.SaveState(), cursor.EotCalls));
    }

    /// <summary>The attack's settings as each outcome record names them.</summary>
    private static JsonObject AttackSettingsRecord(EvaluationRequest req, AttackSettings settings, double epsilon, int eot) => new()
    {
        ["attack"] = req.Attack,
        ["name"] = settings.Create().Name,
        ["epsilon"] = epsilon,
        ["steps"] = req.Steps,
        ["stepSize"] = settings.Alpha,
        ["restarts"] = req.Restarts,
        ["protocol"] = req.Protocol,
        ["eot"] = eot,
        ["queries"] = req.UsesQueries ? req.Queries : null,
        ["seed"] = req.Seed,
    };

    /// <summary>One evaluated batch's outcomes and the artifacts to store with them (skipping images already recorded).</summary>
    private static PreparedBatch Prepare(EvaluationWork work, EvaluationBatch batch, GradientTally gradients, HashSet<int> skip, double epsilon, JsonObject attackSettings)
    {
        var perImage = batch.Seconds / Math.Max(1, batch.Outcomes.Count);
        var outcomes = batch.Outcomes.Select((o, i) => new EvaluationImageOutcome(o.Index, work.EpsilonIndex, o.Label,
            o.ClipClean, o.AptClean, o.TaptClean, o.ClipRobust, o.AptRobust, o.TaptRobust, perImage,
            o.BrokenBy is { } b ? new EvaluationMethodFigures(b.Clip, b.Apt, b.Tapt == RobustnessEvaluator.NotAttacked ? null : b.Tapt) : null,
            o.Queries is { } q ? new EvaluationMethodFigures((int)q.Clip, (int)q.Apt, batch.TaptAdversarial is null ? null : (int)q.Tapt) : null,
            GradientFlags(gradients, i, g => g.Zero), GradientFlags(gradients, i, g => g.NonFinite))).ToImmutableArray();
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
            if (o.BrokenBy is { } brokenBy) record["brokenByStage"] = Figures(brokenBy);
            if (o.Queries is { } queries) record["queries"] = Figures(queries);
            record["zeroGradient"] = Flags(o.ZeroGradient);
            record["nonFiniteGradient"] = Flags(o.NonFiniteGradient);
            files.Add(($"{folder}/outcome.json", System.Text.Encoding.UTF8.GetBytes(record.ToJsonString()), "application/json"));
        }
        return new PreparedBatch(outcomes, files);
    }

    /// <summary>Image <paramref name="position"/> of the batch's gradient check per method (null: that method's gradient was not taken).</summary>
    private static EvaluationMethodFlags? GradientFlags(GradientTally tally, int position, Func<(bool Zero, bool NonFinite), bool> pick)
    {
        bool? Of(string method) => tally.PerImage(method) is { } list && position < list.Count ? pick(list[position]) : null;
        return tally.Has("CLIP") ? new EvaluationMethodFlags(Of("CLIP"), Of("APT"), Of("TAPT")) : null;
    }

    private static JsonObject Figures(EvaluationMethodFigures f) => new() { ["clip"] = f.Clip, ["apt"] = f.Apt, ["tapt"] = f.Tapt };

    private static JsonObject? Flags(EvaluationMethodFlags? f) => f is null ? null : new() { ["clip"] = f.Clip, ["apt"] = f.Apt, ["tapt"] = f.Tapt };

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
