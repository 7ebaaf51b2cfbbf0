using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Robustness evaluations through the HTTP API, on the tiny model.</summary>
[Collection(GatewayCollection.Name)]
public sealed class EvaluationTests(GatewayFixture gateway)
{
    private static readonly int[] Images = [0, 1, 2, 3, 4, 5];
    private const int Seed = 3;
    private static readonly double[] Epsilons = [1.0 / 255, 4.0 / 255];

    [Fact]
    public async Task An_evaluation_job_matches_the_in_process_evaluator_stores_its_artifacts_and_is_tenant_isolated()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("ev");
        var created = await http.PostAsJsonAsync("/api/evaluations", new
        {
            vocabulary = "fashion",
            promptConfiguration = "default",
            attack = "pgd",
            epsilons = Epsilons,
            steps = 3,
            seed = Seed,
            batchSize = 4,
            name = "tiny pgd",
        });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var jobId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;

        var content = new MultipartFormDataContent();
        foreach (var i in Images)
        {
            var part = new ByteArrayContent(TestModels.FashionPng(i));
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            content.Add(part, TestModels.FashionLabels[TestModels.FashionTest.Labels[i]], $"fashion-{i}.png");
        }
        var bad = new ByteArrayContent(TestModels.FashionPng(9));
        bad.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        content.Add(bad, "not-a-label", "bad.png");
        var upload = await http.PostAsync($"/api/evaluations/{jobId}/images", content);
        Assert.True(upload.IsSuccessStatusCode, await upload.Content.ReadAsStringAsync());
        var receipt = await upload.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(Images.Length, receipt.GetProperty("acceptedIndices").GetArrayLength());
        Assert.Equal(1, receipt.GetProperty("rejected").GetArrayLength());

        (await http.PostAsync($"/api/evaluations/{jobId}/start", null)).EnsureSuccessStatusCode();
        var deadline = DateTime.UtcNow.AddMinutes(4);
        JsonElement status;
        while (true)
        {
            status = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}");
            if (status.GetProperty("state").GetString() is "completed" or "cancelled") break;
            Assert.True(DateTime.UtcNow < deadline, $"evaluation still {status}");
            await Task.Delay(200);
        }
        Assert.Equal("completed", status.GetProperty("state").GetString());
        Assert.Equal(Images.Length * Epsilons.Length, status.GetProperty("outcomesRecorded").GetInt32());

        var report = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/report");
        var results = report.GetProperty("results");
        Assert.Equal(Epsilons.Length, results.GetArrayLength());
        Assert.Equal(Epsilons.Length, report.GetProperty("curve").GetArrayLength());
        Assert.False(string.IsNullOrEmpty(report.GetProperty("pinned").GetProperty("modelChecksum").GetString()));
        Assert.Equal(64, report.GetProperty("pinned").GetProperty("promptArtifactSha256").GetString()!.Length);
        Assert.False(string.IsNullOrEmpty(report.GetProperty("pinned").GetProperty("engineVersion").GetString()));
        Assert.True(report.GetProperty("cost").GetProperty("secondsPerImage").GetDouble() > 0);

        // The same images, seed and settings through RobustnessEvaluator in this process.
        var expected = InProcess(Images, Epsilons, Seed, steps: 3, batchSize: 4);
        // The ε check: each method's robust accuracy may not rise from 1/255 to 4/255 (a warning names it).
        var allChecks = report.GetProperty("checks").EnumerateArray().ToList();
        var checks = allChecks.Where(c => !c.TryGetProperty("epsilon", out _)).ToDictionary(c => c.GetProperty("method").GetString()!);
        Assert.Equal(["APT", "CLIP", "TAPT"], checks.Keys.Order());
        Assert.All(checks.Values, c => Assert.Equal("monotone-in-epsilon", c.GetProperty("check").GetString()));
        // Per ε, the gradient check of each attacked model (TAPT is not attacked non-adaptively), word for word the in-process run's.
        for (var k = 0; k < Epsilons.Length; k++)
        {
            var atEps = allChecks.Where(c => c.TryGetProperty("epsilon", out var e) && e.GetDouble() == Epsilons[k])
                .Select(c => (c.GetProperty("check").GetString()!, c.GetProperty("method").GetString()!, c.GetProperty("warning").GetBoolean(), c.GetProperty("detail").GetString()!));
            Assert.Equal([.. expected[k].Checks.Select(c => (c.Name, c.Method, c.Warning, c.Detail)).Order()], atEps.Order().ToArray());
        }
        Assert.Equal(expected[1].Robust.Clip > expected[0].Robust.Clip, checks["CLIP"].GetProperty("warning").GetBoolean());
        Assert.Equal(expected[1].Robust.Tapt > expected[0].Robust.Tapt, checks["TAPT"].GetProperty("warning").GetBoolean());
        for (var k = 0; k < Epsilons.Length; k++)
        {
            var r = results[k];
            Assert.Equal(Images.Length, r.GetProperty("n").GetInt32());
            void Same(string kind, string method, double want)
            {
                var acc = r.GetProperty(kind).GetProperty(method);
                Assert.Equal(want, acc.GetProperty("accuracy").GetDouble(), 12);
                var ci = acc.GetProperty("ci95");
                Assert.True(ci[0].GetDouble() <= want + 1e-12 && want <= ci[1].GetDouble() + 1e-12);
            }
            Same("clean", "clip", expected[k].Clean.Clip);
            Same("clean", "apt", expected[k].Clean.Apt);
            Same("clean", "tapt", expected[k].Clean.Tapt);
            Same("robust", "clip", expected[k].Robust.Clip);
            Same("robust", "apt", expected[k].Robust.Apt);
            Same("robust", "tapt", expected[k].Robust.Tapt);
            Assert.True(r.GetProperty("perLabel").GetArrayLength() >= 1);
        }
        var outcomes = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/outcomes");
        foreach (var k in Enumerable.Range(0, Epsilons.Length))
            foreach (var o in expected[k].Images)
            {
                var got = outcomes.EnumerateArray().Single(x => x.GetProperty("epsilonIndex").GetInt32() == k && x.GetProperty("index").GetInt32() == o.Index);
                Assert.Equal(o.ClipRobust, got.GetProperty("clipRobust").GetInt32());
                Assert.Equal(o.AptRobust, got.GetProperty("aptRobust").GetInt32());
                Assert.Equal(o.TaptRobust, got.GetProperty("taptRobust").GetInt32());
                Assert.Equal(o.TaptClean, got.GetProperty("taptClean").GetInt32());
            }

        // Artifacts: clean original, adversarial images, amplified perturbations and the outcome record, per image and ε; the report.
        var artifacts = (await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/artifacts")).EnumerateArray()
            .Select(a => a.GetProperty("name").GetString()!).ToHashSet();
        foreach (var i in Enumerable.Range(0, Images.Length))
        {
            Assert.Contains($"jobs/{jobId}/inputs/{i:D5}", artifacts);
            foreach (var k in Enumerable.Range(0, Epsilons.Length))
                foreach (var f in new[] { "clean.png", "clip.png", "apt.png", "perturbation-clip.png", "perturbation-apt.png", "outcome.json" })
                    Assert.Contains($"jobs/{jobId}/adversarial/eps{k}/{i:D5}/{f}", artifacts);
        }
        Assert.Contains($"jobs/{jobId}/results/report.json", artifacts);
        var png = await http.GetByteArrayAsync($"/api/evaluations/{jobId}/artifacts/adversarial/eps1/00002/apt.png");
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        var record = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/artifacts/adversarial/eps1/00002/outcome.json");
        Assert.Equal(4.0 / 255, record.GetProperty("settings").GetProperty("epsilon").GetDouble(), 12);
        var download = await http.GetAsync($"/api/evaluations/{jobId}/report/download");
        Assert.Equal("attachment", download.Content.Headers.ContentDisposition?.DispositionType);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/api/evaluations/{jobId}/artifacts/adversarial/eps0/00000/missing.png")).StatusCode);
        Assert.NotEqual(HttpStatusCode.OK, (await http.GetAsync($"/api/evaluations/{jobId}/artifacts/adversarial/..%2F..%2Fx/a.png")).StatusCode);

        // Another tenant sees nothing of it.
        var (_, _, other) = await gateway.TenantWithSetupAsync("ev-other");
        foreach (var path in new[] { "", "/report", "/report/download", "/outcomes", "/artifacts", "/artifacts/adversarial/eps0/00000/apt.png" })
            Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/api/evaluations/{jobId}{path}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsync($"/api/evaluations/{jobId}/start", null)).StatusCode);
    }

    private static EvaluationReport[] InProcess(int[] images, double[] epsilons, int seed, int steps, int batchSize)
    {
        using var checkpoint = ClipCheckpoint.Load(TestModels.TinyDirectory);
        var clip = new PromptedClip(checkpoint);
        using var artifact = PromptArtifact.Load(Path.Combine(TestModels.TinyDirectory, "tapt-prompts.safetensors"), checkpoint);
        var pre = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
        var labels = TestModels.FashionLabels;
        var data = new InMemoryImageDataset(labels, images.Select(i => pre.Load(TestModels.FashionPng(i))).ToArray(),
            images.Select(i => TestModels.FashionTest.Labels[i]).ToArray(), clip.ImageSize);
        var evaluator = new RobustnessEvaluator(clip, new TaptDefense(clip, artifact, artifact.Settings), new LabelVocabulary(labels));
        var order = EvaluationWorkerGrain.EvaluationOrder(images.Length, seed);
        return epsilons.Select(eps => evaluator.Evaluate(data, order,
            new EvaluationOptions(new AttackSettings(AttackKind.Pgd, eps, steps), EvaluationProtocol.NonAdaptive, seed, batchSize))).ToArray();
    }
}
