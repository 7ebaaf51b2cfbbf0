using Microsoft.Playwright;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// The web console end to end in Debian's headless Chromium driven by Playwright. Screenshots go to the test
/// output folder (<c>artifacts/console-*.png</c>).
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class BrowserTests(GatewayFixture gateway)
{
    public const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task A_tenant_signs_in_creates_a_vocabulary_drops_images_watches_them_tune_and_audits_a_flagged_one()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium package (as .ci/run does)");
        var (tenantId, key) = await gateway.CreateTenantAsync(prefix: "browser");
        await using var console = await ConsolePage.OpenAsync(gateway.BaseAddress);
        var page = console.Page;
        var errors = console.Errors;

        // Sign in.
        await page.GotoAsync("/");
        await page.GetByLabel("API key").FillAsync(key);
        await Screenshot(page, "console-signin");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page.Locator("#tenant-name")).ToHaveTextAsync(tenantId);

        // A vocabulary and a prompt configuration, through the forms.
        await page.GetByRole(AriaRole.Link, new() { Name = "Vocabularies" }).ClickAsync();
        var vocabularies = page.Locator("#view-vocabularies");
        await vocabularies.GetByLabel("Name", new() { Exact = true }).FillAsync("fashion");
        await vocabularies.GetByLabel("Labels, one per line").FillAsync(string.Join('\n', TestModels.FashionLabels));
        await page.GetByRole(AriaRole.Button, new() { Name = "Save vocabulary" }).ClickAsync();
        await Assertions.Expect(page.Locator("#vocab-table tbody tr")).ToHaveCountAsync(1);
        await Assertions.Expect(page.Locator("#vocab-detail .label-cloud li")).ToHaveCountAsync(10);
        await Screenshot(page, "console-vocabularies");

        await page.GetByRole(AriaRole.Link, new() { Name = "Prompt configurations" }).ClickAsync();
        await page.Locator("#prompt-name").FillAsync("live");
        await page.Locator("#prompt-model").FillAsync(TestModels.Tiny);
        await page.Locator("#prompt-views").FillAsync("64");
        await page.Locator("#prompt-steps").FillAsync("8");
        await page.Locator("#prompt-minconf").FillAsync("0.3");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save configuration" }).ClickAsync();
        await Assertions.Expect(page.Locator("#prompt-table tbody tr")).ToHaveCountAsync(1);

        // Drop 16 images on the drop zone and start the job.
        await page.GetByRole(AriaRole.Link, new() { Name = "Jobs" }).ClickAsync();
        await Assertions.Expect(page.Locator("#job-vocabulary option")).ToHaveCountAsync(1);
        await page.Locator("#job-name").FillAsync("Spring catalogue");
        var files = Enumerable.Range(20, 16).Select(i => new { name = $"fashion-{i}.png", data = Convert.ToBase64String(TestModels.FashionPng(i)) }).ToArray();
        await page.EvaluateAsync(@"files => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: 'image/png' }));
            }
            const zone = document.getElementById('dropzone');
            zone.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }", files);
        await Assertions.Expect(page.Locator("#file-summary")).ToContainTextAsync("16 images chosen");
        await page.GetByRole(AriaRole.Button, new() { Name = "Upload and start" }).ClickAsync();

        // Probabilities move as step events arrive, then the final predictions fill the grid.
        await Assertions.Expect(page.Locator("#tiles > li")).ToHaveCountAsync(16);
        await page.WaitForFunctionAsync("() => window.taptConsole.stepsApplied >= 12 || window.taptConsole.resultsApplied > 0");
        await Screenshot(page, "console-live", settle: false);
        await Assertions.Expect(page.Locator("#live-progress-text")).ToHaveTextAsync("16 / 16 images", new() { Timeout = 120_000 });
        await Assertions.Expect(page.Locator("#tiles > li[data-state='done']")).ToHaveCountAsync(16);
        await Assertions.Expect(page.Locator("#live-state")).ToHaveTextAsync("completed");
        var stats = await page.EvaluateAsync<ConsoleStats>("() => window.taptConsole");
        Assert.True(stats.StepsApplied >= 16, $"only {stats.StepsApplied} step events reached the page");
        Assert.Equal(16, stats.ResultsApplied);
        var tuned = await page.Locator("#tiles > li[data-steps]:not([data-steps='0'])").CountAsync();
        Assert.True(tuned >= 8, $"only {tuned} tiles showed tuning steps before their result");
        foreach (var verdict in await page.Locator("#tiles .tile-verdict").AllTextContentsAsync())
            Assert.Contains(TestModels.FashionLabels, l => verdict.StartsWith(l, StringComparison.Ordinal));
        await Screenshot(page, "console-job-done");

        // The audit view: open a flagged image, compare baseline and defended predictions, see the steps.
        await page.GetByRole(AriaRole.Link, new() { Name = "Audit" }).ClickAsync();
        var first = page.Locator(".audit-item").First;
        await Assertions.Expect(first).ToBeVisibleAsync();
        await first.ClickAsync();
        await Assertions.Expect(page.Locator("#audit-detail")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#audit-defended-bars li")).ToHaveCountAsync(5);
        await Assertions.Expect(page.Locator("#audit-baseline-bars li")).ToHaveCountAsync(5);
        await Assertions.Expect(page.Locator("#audit-steps tbody tr")).ToHaveCountAsync(8);
        await Assertions.Expect(page.Locator("#audit-reasons .badge").First).ToBeVisibleAsync();
        await page.WaitForFunctionAsync("() => document.getElementById('audit-image').naturalWidth > 0");
        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByRole(AriaRole.Button, new() { Name = "Download audit record" }).ClickAsync());
        var saved = Path.Combine(GatewayFixture.ArtifactsFolder, download.SuggestedFilename);
        await download.SaveAsAsync(saved);
        Assert.Contains("tapt-audit", await File.ReadAllTextAsync(saved));
        await Screenshot(page, "console-audit");

        Assert.Empty(errors);
    }

    private static async Task Screenshot(IPage page, string name, bool settle = true)
    {
        if (settle) await page.WaitForTimeoutAsync(400);   // let the bars' transitions finish
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(GatewayFixture.ArtifactsFolder, name + ".png"), FullPage = true });
    }

    private sealed class ConsoleStats
    {
        public int StepsApplied { get; set; }
        public int ResultsApplied { get; set; }
        public int ProgressApplied { get; set; }
        public int Snapshots { get; set; }
    }
}
