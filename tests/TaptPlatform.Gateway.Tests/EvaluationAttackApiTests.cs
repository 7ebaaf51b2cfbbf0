using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Cli.Commands;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// The attacks beyond the gradient ones through the HTTP API and <c>tapt evaluations</c>: what is wrong with a request
/// is said in the 4xx, and an AutoAttack evaluation created by the CLI reports each stage and the masking checks.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class EvaluationAttackApiTests(GatewayFixture gateway)
{
    [Fact]
    public async Task Bad_settings_of_the_new_attacks_get_a_4xx_that_says_what_is_wrong()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("evattack-bad");
        using var _ = http;
        async Task<(HttpStatusCode Status, JsonElement Problem)> Post(object body)
        {
            var response = await http.PostAsJsonAsync("/api/evaluations", body);
            return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
        }
        string Detail(JsonElement problem) => problem.GetProperty("detail").GetString()!;

        var restarts = await Post(new { vocabulary = "fashion", promptConfiguration = "default", attack = "autoattack", restarts = 3 });
        Assert.Equal(HttpStatusCode.BadRequest, restarts.Status);
        Assert.Contains("autoattack runs one restart per stage", Detail(restarts.Problem), StringComparison.Ordinal);
        var eot = await Post(new { vocabulary = "fashion", promptConfiguration = "default", attack = "autoattack-rand", protocol = "adaptive", eot = 4 });
        Assert.Equal(HttpStatusCode.BadRequest, eot.Status);
        Assert.Contains("eot must be in 20..32 (got 4)", Detail(eot.Problem), StringComparison.Ordinal);
        var queries = await Post(new { vocabulary = "fashion", promptConfiguration = "default", attack = "square", queries = 0 });
        Assert.Equal(HttpStatusCode.BadRequest, queries.Status);
        Assert.Contains("queries (Square's budget per image and restart) must be in 1..100000", Detail(queries.Problem), StringComparison.Ordinal);
        var unknown = await Post(new { vocabulary = "fashion", promptConfiguration = "default", attack = "autoattack-plus" });
        Assert.Equal(HttpStatusCode.BadRequest, unknown.Status);
        Assert.Contains("autoattack-rand", Detail(unknown.Problem), StringComparison.Ordinal);

        // Through the defense every Square query runs the whole tuning: 100,000 queries × 16 ε × 32 EOT × 16 views is refused, its passes named.
        var costly = await Post(new
        {
            vocabulary = "fashion",
            promptConfiguration = "default",
            attack = "autoattack",
            epsilons = Enumerable.Range(1, 16).Select(i => i / 255.0).ToArray(),
            steps = 10,
            queries = 100_000,
            protocol = "adaptive",
            eot = 32,
        });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, costly.Status);
        Assert.Equal("evaluation_too_costly", costly.Problem.GetProperty("code").GetString());
        Assert.Contains("APGD-CE 10 + APGD-T 9×10 + FAB-T 9×2×10 + Square 100000", Detail(costly.Problem), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_autoattack_evaluation_created_by_the_cli_reports_each_stage_and_the_masking_checks()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("evattack");
        using var _ = http;
        var folder = Directory.CreateTempSubdirectory("tapt-eval-images-");
        try
        {
            foreach (var i in new[] { 0, 1, 2, 3 })
            {
                var label = Directory.CreateDirectory(Path.Combine(folder.FullName, TestModels.FashionLabels[TestModels.FashionTest.Labels[i]]));
                await File.WriteAllBytesAsync(Path.Combine(label.FullName, $"fashion-{i}.png"), TestModels.FashionPng(i));
            }
            var settings = new EvaluationsCreateCommand.Settings("fashion", "default", "autoattack", EvaluationsCreateCommand.ParseEpsilons("2/255, 8/255"),
                Steps: 2, StepSize: null, Restarts: 1, Queries: 10, Protocol: "nonadaptive", Eot: 1, Seed: 1, BatchSize: 4, Name: "cli autoattack");
            var created = new StringWriter();
            Assert.Equal(0, await EvaluationsCreateCommand.RunAsync(gateway.BaseAddress.ToString(), key, settings, folder.FullName, start: true, created, CancellationToken.None));
            var jobId = created.ToString().Split(' ')[0];
            Assert.StartsWith("eval-", jobId, StringComparison.Ordinal);

            var deadline = DateTime.UtcNow.AddMinutes(3);
            while ((await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}")).GetProperty("state").GetString() is not ("completed" or "cancelled"))
            {
                Assert.True(DateTime.UtcNow < deadline, "the evaluation did not finish in time");
                await Task.Delay(200);
            }
            var report = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/report");
            Assert.Equal("completed", report.GetProperty("state").GetString());
            Assert.Equal(10, report.GetProperty("attack").GetProperty("queries").GetInt32());
            foreach (var result in report.GetProperty("results").EnumerateArray())
            {
                var stages = result.GetProperty("stages").EnumerateArray().ToArray();
                Assert.Equal(["APGD-CE-2", "APGD-T-2", "FAB-T-2", "Square-10"], stages.Select(s => s.GetProperty("attack").GetString()));
                var clip = stages.Select(s => s.GetProperty("clip").GetDouble()).ToArray();
                Assert.True(clip.Zip(clip.Skip(1)).All(p => p.Second <= p.First), $"CLIP's robust accuracy rises across stages: {string.Join(", ", clip)}");
                Assert.Equal(result.GetProperty("robust").GetProperty("clip").GetProperty("accuracy").GetDouble(), clip[^1], 12);
            }
            var checks = report.GetProperty("checks").EnumerateArray().Select(c => (c.GetProperty("check").GetString(), c.GetProperty("method").GetString())).ToList();
            foreach (var method in new[] { "CLIP", "APT" })
            {
                Assert.Equal(2, checks.Count(c => c == ("gradients", method)));
                Assert.Equal(2, checks.Count(c => c == ("square-beyond-white-box", method)));
            }
            Assert.Contains(("monotone-in-epsilon", "TAPT"), checks);
            var outcomes = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/outcomes");
            Assert.All(outcomes.EnumerateArray(), o => Assert.Equal(JsonValueKind.Number, o.GetProperty("brokenBy").GetProperty("clip").ValueKind));

            var printed = new StringWriter();
            Assert.Equal(0, await EvaluationsCommand.RunAsync(gateway.BaseAddress.ToString(), key, "report", jobId, printed, CancellationToken.None));
            var text = printed.ToString();
            Assert.Contains("after 4. Square-10", text, StringComparison.Ordinal);
            Assert.Contains("square-beyond-white-box (CLIP) at eps 8/255", text, StringComparison.Ordinal);
            Assert.Contains("TAPT not attacked", text, StringComparison.Ordinal);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}
