using System.Text.Json;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Grains.Tests;

/// <summary>
/// Evaluations with AutoAttack and Square on the tiny model, with small budgets: the report's per-stage robust accuracy,
/// queries per image and masking checks are those <c>tapt eval</c> (<see cref="RobustnessEvaluator"/> in this process)
/// computes for the same images, seed and settings.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class EvaluationAttackTests(PlatformFixture platform)
{
    private const int Images = 6;

    [Fact]
    public async Task An_autoattack_evaluation_reports_each_stage_and_the_masking_checks_as_tapt_eval()
    {
        var request = new EvaluationRequest("fashion", "default", "autoattack", [2.0 / 255, 8.0 / 255], Steps: 2, Seed: 4, BatchSize: 4, Queries: 15);
        var (report, outcomes) = await RunAsync(request, "evaa");
        var expected = InProcess(request, AttackKind.AutoAttack, EvaluationProtocol.NonAdaptive);

        Assert.Equal(["APGD-CE-2", "APGD-T-2", "FAB-T-2", "Square-15"], report.GetProperty("attack").GetProperty("stages").EnumerateArray().Select(s => s.GetString()));
        Assert.Equal(15, report.GetProperty("attack").GetProperty("queries").GetInt32());
        for (var k = 0; k < request.Epsilons.Length; k++)
        {
            var result = report.GetProperty("results")[k];
            var stages = result.GetProperty("stages").EnumerateArray().ToArray();
            Assert.Equal(expected[k].Stages!.Select(s => s.Stage), stages.Select(s => s.GetProperty("attack").GetString()));
            for (var s = 0; s < stages.Length; s++)
            {
                Assert.Equal(expected[k].Stages![s].Robust.Clip, stages[s].GetProperty("clip").GetDouble(), 12);
                Assert.Equal(expected[k].Stages![s].Robust.Apt, stages[s].GetProperty("apt").GetDouble(), 12);
                Assert.Equal(JsonValueKind.Null, stages[s].GetProperty("tapt").ValueKind);   // non-adaptive: TAPT is not attacked
                if (s > 0) Assert.True(stages[s].GetProperty("clip").GetDouble() <= stages[s - 1].GetProperty("clip").GetDouble());
            }
            // CLIP is deterministic: its robust accuracy is the last stage's; no stage beats the clean accuracy.
            var robust = result.GetProperty("robust");
            Assert.Equal(robust.GetProperty("clip").GetProperty("accuracy").GetDouble(), stages[^1].GetProperty("clip").GetDouble(), 12);
            Assert.Equal(robust.GetProperty("apt").GetProperty("accuracy").GetDouble(), stages[^1].GetProperty("apt").GetDouble(), 12);
            Assert.True(stages[0].GetProperty("clip").GetDouble() <= result.GetProperty("clean").GetProperty("clip").GetProperty("accuracy").GetDouble());
            Assert.Equal(JsonValueKind.Null, result.GetProperty("queriesPerImage").ValueKind);
            Assert.Equal(expected[k].Robust.Clip, robust.GetProperty("clip").GetProperty("accuracy").GetDouble(), 12);
            Assert.Equal(expected[k].Robust.Tapt, robust.GetProperty("tapt").GetProperty("accuracy").GetDouble(), 12);
            AssertChecks(report, request.Epsilons[k], expected[k], ["CLIP", "APT"]);
        }
        Assert.All(outcomes, o => Assert.Null(o.BrokenBy!.Tapt));
        Assert.All(outcomes, o => Assert.InRange(o.BrokenBy!.Clip!.Value, -1, 4));
        // Each of CLIP's and APT's outcomes: the stage the in-process run says fooled it.
        var byImage = expected.SelectMany((r, k) => r.Images.Select(i => (k, i))).ToDictionary(x => (x.k, x.i.Index), x => x.i.BrokenBy!);
        Assert.All(outcomes, o => Assert.Equal((byImage[(o.EpsilonIndex, o.Index)].Clip, byImage[(o.EpsilonIndex, o.Index)].Apt), (o.BrokenBy!.Clip!.Value, o.BrokenBy.Apt!.Value)));
    }

    [Fact]
    public async Task An_adaptive_square_evaluation_reports_queries_per_image_for_every_method_as_tapt_eval()
    {
        var request = new EvaluationRequest("fashion", "default", "square", [4.0 / 255], Protocol: "adaptive", Seed: 2, BatchSize: 3, Queries: 8);
        var (report, outcomes) = await RunAsync(request, "evsq");
        var expected = InProcess(request, AttackKind.Square, EvaluationProtocol.Adaptive)[0];

        var result = report.GetProperty("results")[0];
        Assert.Equal(JsonValueKind.Null, result.GetProperty("stages").ValueKind);
        var queries = result.GetProperty("queriesPerImage");
        Assert.Equal(expected.QueriesPerImage!.Clip, queries.GetProperty("clip").GetDouble(), 12);
        Assert.Equal(expected.QueriesPerImage.Apt, queries.GetProperty("apt").GetDouble(), 12);
        Assert.Equal(expected.QueriesPerImage.Tapt, queries.GetProperty("tapt").GetDouble(), 12);
        // Each image takes at most the initial query and the budget; images already wrong take none.
        Assert.All(outcomes, o => Assert.InRange(o.Queries!.Tapt!.Value, 0, 1 + request.Queries));
        Assert.All(outcomes.Where(o => o.ClipClean != o.Label), o => Assert.Equal((int?)0, o.Queries!.Clip));
        Assert.Equal(expected.Robust.Tapt, result.GetProperty("robust").GetProperty("tapt").GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(expected.Robust.Clip, result.GetProperty("robust").GetProperty("clip").GetProperty("accuracy").GetDouble(), 12);
        AssertChecks(report, request.Epsilons[0], expected, ["CLIP", "APT", "TAPT"]);
        Assert.All(outcomes, o => Assert.NotNull(o.ZeroGradient!.Tapt));
    }

    /// <summary>The report's gradient checks at ε are the in-process run's, for exactly <paramref name="methods"/>; AutoAttack's Square check too.</summary>
    private static void AssertChecks(JsonElement report, double epsilon, EvaluationReport expected, string[] methods)
    {
        var checks = report.GetProperty("checks").EnumerateArray()
            .Where(c => c.TryGetProperty("epsilon", out var e) && e.GetDouble() == epsilon)
            .Select(c => (Name: c.GetProperty("check").GetString()!, Method: c.GetProperty("method").GetString()!, Warning: c.GetProperty("warning").GetBoolean(),
                Detail: c.GetProperty("detail").GetString()!))
            .ToList();
        Assert.Equal(methods.Order(), checks.Where(c => c.Name == MaskingChecks.Gradients).Select(c => c.Method).Order());
        foreach (var want in expected.Checks)
            Assert.Contains((want.Name, want.Method, want.Warning, want.Detail), checks);
        Assert.Equal(expected.Checks.Count, checks.Count);
    }

    private async Task<(JsonElement Report, IReadOnlyList<EvaluationImageOutcome> Outcomes)> RunAsync(EvaluationRequest request, string prefix)
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant(prefix);
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var evaluation = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, Images, request);
        await evaluation.StartAsync(tenantId);
        var done = await EvaluationsForTests.WaitAsync(evaluation, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(3));
        Assert.True(done.State == JobState.Completed, done.Error);
        return (JsonDocument.Parse(await evaluation.GetReportAsync(tenantId)).RootElement, await evaluation.GetOutcomesAsync(tenantId));
    }

    /// <summary>The same images, order, seed and settings through <see cref="RobustnessEvaluator.Evaluate(IImageDataset, IReadOnlyList{int}, EvaluationOptions, Action{int, int}?)"/>, one run per ε.</summary>
    private static EvaluationReport[] InProcess(EvaluationRequest request, AttackKind kind, EvaluationProtocol protocol)
    {
        using var checkpoint = ClipCheckpoint.Load(TestModels.TinyDirectory);
        var clip = new PromptedClip(checkpoint);
        using var artifact = PromptArtifact.Load(Path.Combine(TestModels.TinyDirectory, "tapt-prompts.safetensors"), checkpoint);
        var pre = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
        var labels = TestModels.FashionLabels;
        var data = new InMemoryImageDataset(labels, [.. Enumerable.Range(0, Images).Select(i => pre.Load(TestModels.FashionPng(i)))],
            [.. Enumerable.Range(0, Images).Select(i => TestModels.FashionTest.Labels[i])], clip.ImageSize);
        using var defense = new TaptDefense(clip, artifact, artifact.Settings);
        var evaluator = new RobustnessEvaluator(clip, defense, new LabelVocabulary(labels));
        var order = EvaluationWorkerGrain.EvaluationOrder(Images, request.Seed);
        return [.. request.Epsilons.Select(eps => evaluator.Evaluate(data, order, new EvaluationOptions(
            new AttackSettings(kind, eps, request.Steps, request.StepSize, Restarts: request.Restarts, Queries: request.Queries),
            protocol, request.Seed, request.BatchSize, request.EotSamples)))];
    }
}
