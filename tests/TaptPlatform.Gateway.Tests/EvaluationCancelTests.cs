using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using TaptPlatform.Cli.Commands;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// An evaluation's limits and its cancel through every client: a too costly one is refused at creation naming its cost,
/// a running one is cancelled from the console's Cancel button, and the CLI and the API report it cancelled with its partial outcomes.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class EvaluationCancelTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_too_costly_evaluation_is_refused_naming_its_cost_and_the_limit()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("evcost");
        using var _ = http;
        var costly = await http.PostAsJsonAsync("/api/evaluations", new
        {
            vocabulary = "fashion",
            promptConfiguration = "default",
            attack = "apgd-ce",
            epsilons = new[] { 1.0 / 255, 2.0 / 255, 4.0 / 255, 8.0 / 255 },
            steps = 1000,
            restarts = 10,
            eot = 32,
            protocol = "adaptive",
        });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, costly.StatusCode);
        var problem = await costly.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("evaluation_too_costly", problem.GetProperty("code").GetString());
        Assert.Equal(10_000_000, problem.GetProperty("maxCost").GetInt64());
        Assert.True(problem.GetProperty("cost").GetInt64() > 10_000_000);
        Assert.Contains("steps 1000", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var tooManySteps = await http.PostAsJsonAsync("/api/evaluations", new { vocabulary = "fashion", promptConfiguration = "default", attack = "pgd", steps = 10_000 });
        Assert.Equal(HttpStatusCode.BadRequest, tooManySteps.StatusCode);
        Assert.Contains("steps must be in 1..1000", await tooManySteps.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_console_cancels_a_running_evaluation_and_the_cli_sees_it_cancelled()
    {
        Assert.True(File.Exists(BrowserTests.Chromium), $"{BrowserTests.Chromium} is missing: install Debian's chromium package");
        var (_, key, http) = await gateway.TenantWithSetupAsync("evcancel");
        using var _ = http;
        // Long enough (PGD-1000 on 32 images) that the cancel lands mid-run on a loaded machine too.
        var jobId = await EvaluationLiveTests.CreateEvaluationAsync(http, [.. Enumerable.Range(0, 32)], [4.0 / 255], steps: 1000, name: "long");
        (await http.PostAsync($"/api/evaluations/{jobId}/start", null)).EnsureSuccessStatusCode();

        await using var console = await ConsolePage.OpenAsync(gateway.BaseAddress);
        var page = console.Page;
        await page.GotoAsync("/");
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Evaluations" }).ClickAsync();
        await page.Locator("#eval-table tbody a").First.ClickAsync();
        await Assertions.Expect(page.Locator("#eval-state")).ToHaveTextAsync("running");
        var cancelled = await page.RunAndWaitForResponseAsync(() => page.Locator("#eval-cancel").ClickAsync(),
            r => r.Url.EndsWith($"/api/evaluations/{jobId}/cancel", StringComparison.Ordinal));
        Assert.True(cancelled.Status == 200, $"the cancel was answered {cancelled.Status}: {await cancelled.TextAsync()}");
        await Assertions.Expect(page.Locator("#eval-state")).ToHaveTextAsync("cancelled");
        await Assertions.Expect(page.Locator("#eval-cancel")).ToBeHiddenAsync();
        Assert.Empty(console.Errors);

        var status = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}");
        Assert.Equal("cancelled", status.GetProperty("state").GetString());
        var recorded = status.GetProperty("outcomesRecorded").GetInt32();
        Assert.True(recorded < 32, $"{recorded} outcomes: the evaluation ran to its end");
        Assert.Equal(recorded, (await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/outcomes")).GetArrayLength());

        // The CLI: cancelling again is accepted and changes nothing.
        var stdout = new StringWriter();
        Assert.Equal(0, await EvaluationsCommand.RunAsync(gateway.BaseAddress.ToString(), key, "cancel", jobId, stdout, CancellationToken.None));
        Assert.Contains($"{jobId} cancelled: {recorded} / 32 outcomes", stdout.ToString(), StringComparison.Ordinal);
        var (_, otherKey, other) = await gateway.TenantWithSetupAsync("evcancel-other");
        other.Dispose();
        var foreign = await Assert.ThrowsAsync<GatewayException>(() =>
            EvaluationsCommand.RunAsync(gateway.BaseAddress.ToString(), otherKey, "cancel", jobId, new StringWriter(), CancellationToken.None));
        Assert.Contains("404", foreign.Message, StringComparison.Ordinal);
    }
}
