using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// The robustness report page in headless Chromium: an AutoAttack evaluation runs through the HTTP API, then the console
/// shows its report (accuracy table, SVG bar chart with CI whiskers, robust accuracy after each stage, the masking checks,
/// robust-accuracy-vs-ε curve, per-label table, pinned versions) and the artifact browser. Screenshots: <c>artifacts/console-evaluation-*.png</c>.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class EvaluationBrowserTests(GatewayFixture gateway)
{
    [Fact]
    public async Task The_report_page_renders_its_plots_tables_and_artifacts()
    {
        Assert.True(File.Exists(BrowserTests.Chromium), $"{BrowserTests.Chromium} is missing: install Debian's chromium package");
        var (_, key, http) = await gateway.TenantWithSetupAsync("evpage");
        using var _ = http;
        var jobId = await EvaluationLiveTests.CreateEvaluationAsync(http, [0, 1, 2, 3], [1.0 / 255, 4.0 / 255], name: "report page", attack: "autoattack", queries: 10);
        (await http.PostAsync($"/api/evaluations/{jobId}/start", null)).EnsureSuccessStatusCode();
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while ((await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}")).GetProperty("state").GetString() is not ("completed" or "cancelled"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the evaluation did not finish in time");
            await Task.Delay(200);
        }

        await using var console = await ConsolePage.OpenAsync(gateway.BaseAddress);
        var page = console.Page;
        var errors = console.Errors;

        await page.GotoAsync("/");
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page.Locator("#tenant-name")).Not.ToBeEmptyAsync();

        // The list, and the form taking dropped files under the chosen label.
        await page.GetByRole(AriaRole.Link, new() { Name = "Evaluations" }).ClickAsync();
        await Assertions.Expect(page.Locator("#eval-table tbody tr")).ToHaveCountAsync(1);
        await Assertions.Expect(page.Locator("#eval-label option")).ToHaveCountAsync(10);
        // Square's budget is asked for only where an attack reads it; EOT only through the defense, at least 20 for AutoAttack-rand.
        await Assertions.Expect(page.Locator("#eval-queries")).ToBeHiddenAsync();
        await page.Locator("#eval-attack").SelectOptionAsync("autoattack");
        await Assertions.Expect(page.Locator("#eval-queries")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#eval-queries")).ToHaveValueAsync("5000");
        await page.Locator("#eval-attack").SelectOptionAsync("autoattack-rand");
        await Assertions.Expect(page.Locator("#eval-queries")).ToBeHiddenAsync();
        await Assertions.Expect(page.Locator("#eval-eot")).ToBeHiddenAsync();
        await page.Locator("#eval-protocol").SelectOptionAsync("adaptive");
        await Assertions.Expect(page.Locator("#eval-eot")).ToHaveValueAsync("20");
        await page.Locator("#eval-protocol").SelectOptionAsync("nonadaptive");
        await page.Locator("#eval-attack").SelectOptionAsync("pgd");
        await page.Locator("#eval-label").SelectOptionAsync(TestModels.FashionLabels[3]);
        var files = new[] { 5, 6 }.Select(i => new { name = $"fashion-{i}.png", data = Convert.ToBase64String(TestModels.FashionPng(i)) }).ToArray();
        await page.EvaluateAsync(@"files => {
            const dt = new DataTransfer();
            for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.data), c => c.charCodeAt(0))], f.name, { type: 'image/png' }));
            const zone = document.getElementById('eval-dropzone');
            zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }", files);
        await Assertions.Expect(page.Locator("#eval-file-summary")).ToHaveTextAsync("2 images chosen in 1 label.");
        await Assertions.Expect(page.Locator("#eval-file-labels li")).ToHaveTextAsync($"{TestModels.FashionLabels[3]}: 2");
        await Screenshot(page, "console-evaluation-list");

        // The report page.
        await page.Locator("#eval-table tbody a").First.ClickAsync();
        await Assertions.Expect(page.Locator("#eval-state")).ToHaveTextAsync("completed");
        await Assertions.Expect(page.Locator("#eval-progress-text")).ToHaveTextAsync("8 / 8 outcomes");
        await Assertions.Expect(page.Locator("#rep-accuracy tbody tr")).ToHaveCountAsync(3);
        await Assertions.Expect(page.Locator("#rep-bars rect.bar")).ToHaveCountAsync(6);
        Assert.True(await page.Locator("#rep-bars g.whisker").CountAsync() >= 6);
        // AutoAttack: robust accuracy after each of its four stages (TAPT not attacked non-adaptively), and the checks at this ε and across ε.
        await Assertions.Expect(page.Locator("#rep-stages tbody tr")).ToHaveCountAsync(4);
        await Assertions.Expect(page.Locator("#rep-stages tbody tr").Last).ToContainTextAsync("Square-10");
        await Assertions.Expect(page.Locator("#rep-stages tbody tr").First).ToContainTextAsync("not attacked");
        var report = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/report");
        var shown = report.GetProperty("checks").EnumerateArray()
            .Where(c => !c.TryGetProperty("epsilon", out var e) || e.GetDouble() == 1.0 / 255).ToList();
        Assert.Equal(7, shown.Count);   // gradients and Square-beyond-white-box for CLIP and APT at 1/255, ε-monotonicity for each method
        await Assertions.Expect(page.Locator("#rep-checks li")).ToHaveCountAsync(shown.Count);
        await Assertions.Expect(page.Locator("#rep-checks li.check-warning")).ToHaveCountAsync(shown.Count(c => c.GetProperty("warning").GetBoolean()));
        await Assertions.Expect(page.Locator("#rep-checks")).ToContainTextAsync("square-beyond-white-box (CLIP)");
        await Assertions.Expect(page.Locator("#rep-curve polyline.curve")).ToHaveCountAsync(3);
        await Assertions.Expect(page.Locator("#rep-curve circle.dot")).ToHaveCountAsync(6);
        Assert.True(await page.Locator("#rep-per-label tbody tr").CountAsync() >= 1);
        await Assertions.Expect(page.Locator("#rep-pinned")).ToContainTextAsync(TestModels.Tiny);
        var points = await page.Locator("#rep-curve polyline.curve").First.GetAttributeAsync("points");
        Assert.Equal(2, points!.Split(' ').Length);
        var bars = await page.EvaluateAsync<double[]>("() => [...document.querySelectorAll('#rep-bars rect.bar')].map(r => r.getBBox().height)");
        Assert.All(bars, h => Assert.True(h >= 0 && double.IsFinite(h)));

        // The artifact browser: clean, adversarial and amplified perturbation side by side, with per-method outcomes.
        var first = page.Locator("#artifact-list > li").First;
        await Assertions.Expect(page.Locator("#artifact-list > li")).ToHaveCountAsync(4);
        await Assertions.Expect(first.Locator("img[data-file='clean.png']")).ToBeVisibleAsync();
        await Assertions.Expect(first.Locator("img[data-file='perturbation-apt.png']")).ToBeVisibleAsync();
        await Assertions.Expect(first.Locator(".outcome-table tbody tr")).ToHaveCountAsync(3);
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('#artifact-list > li:first-child img')].every(i => i.naturalWidth > 0)");
        await page.Locator("#rep-eps").SelectOptionAsync("1");
        await Assertions.Expect(page.Locator("#rep-artifacts-title")).ToContainTextAsync("4/255");
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('#artifact-list > li:first-child img')].every(i => i.naturalWidth > 0)");
        await Screenshot(page, "console-evaluation-report");

        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByRole(AriaRole.Button, new() { Name = "Download report" }).ClickAsync());
        var saved = Path.Combine(GatewayFixture.ArtifactsFolder, download.SuggestedFilename);
        await download.SaveAsAsync(saved);
        Assert.Contains("tapt-robustness-report/1", await File.ReadAllTextAsync(saved));
        Assert.Empty(errors);
    }

    private static async Task Screenshot(IPage page, string name)
    {
        await page.WaitForTimeoutAsync(200);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(GatewayFixture.ArtifactsFolder, name + ".png"), FullPage = true });
    }
}
