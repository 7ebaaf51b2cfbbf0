using System.IO.Compression;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// Reviewing flagged images in the console with the keyboard alone (Debian's headless Chromium through Playwright),
/// then the trends plot, the trail and an audit bundle downloaded with its progress. Screenshots: <c>artifacts/console-review*.png</c>.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class AuditBrowserTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_reviewer_goes_through_flagged_images_with_the_keyboard_and_exports_a_bundle()
    {
        Assert.True(File.Exists(BrowserTests.Chromium), $"{BrowserTests.Chromium} is missing: install Debian's chromium package");
        var (_, key, http) = await gateway.TenantWithSetupAsync("reviewer", minimumConfidence: 1.0, steps: 3, views: 16);
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http, "to review");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(60, 5)));
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(2));

        await using var console = await ConsolePage.OpenAsync(gateway.BaseAddress);
        var page = console.Page;
        await page.GotoAsync("/");
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Audit" }).ClickAsync();
        await Assertions.Expect(page.Locator(".audit-item")).ToHaveCountAsync(5);
        await Assertions.Expect(page.Locator(".verdict-chip[data-verdict='unreviewed'] strong")).ToHaveTextAsync("5");

        // j opens the first; 1 and 2 record verdicts and move on; k goes back.
        await page.Keyboard.PressAsync("j");
        await Assertions.Expect(page.Locator("#review-position")).ToHaveTextAsync("1 of 5");
        await Assertions.Expect(page.Locator("#audit-baseline-bars li")).ToHaveCountAsync(5);
        await Assertions.Expect(page.Locator("#audit-defended-bars li")).ToHaveCountAsync(5);
        await Assertions.Expect(page.Locator("#audit-steps tbody tr")).ToHaveCountAsync(3);
        await page.WaitForFunctionAsync("() => document.getElementById('audit-image').naturalWidth > 0");
        await Screenshot(page, "console-review");
        await page.Keyboard.PressAsync("1");
        await Assertions.Expect(page.Locator("#review-position")).ToHaveTextAsync("2 of 5");
        await page.Keyboard.PressAsync("2");
        await Assertions.Expect(page.Locator("#review-position")).ToHaveTextAsync("3 of 5");
        await page.Keyboard.PressAsync("k");
        await Assertions.Expect(page.Locator("#review-position")).ToHaveTextAsync("2 of 5");
        await Assertions.Expect(page.Locator("#review-current")).ToHaveTextAsync("False alarm");

        // n goes to the note; Escape leaves it; 3 changes the verdict, which keeps the earlier one in the history.
        await page.Keyboard.PressAsync("n");
        await page.Keyboard.TypeAsync("looked twice: 3 is right");
        await page.Keyboard.PressAsync("Escape");
        await page.Keyboard.PressAsync("3");
        await Assertions.Expect(page.Locator("#review-position")).ToHaveTextAsync("3 of 5");
        await page.Keyboard.PressAsync("ArrowUp");
        await Assertions.Expect(page.Locator("#review-current")).ToHaveTextAsync("Needs follow-up");
        await Assertions.Expect(page.Locator("#review-history li")).ToHaveCountAsync(2);
        await Assertions.Expect(page.Locator("#review-history li").First).ToContainTextAsync("looked twice: 3 is right");
        await Assertions.Expect(page.Locator(".audit-item[data-verdict='confirmed-attack']")).ToHaveCountAsync(1);
        await Assertions.Expect(page.Locator(".verdict-chip[data-verdict='unreviewed'] strong")).ToHaveTextAsync("3");
        await Assertions.Expect(page.Locator(".verdict-chip[data-verdict='needs-follow-up'] strong")).ToHaveTextAsync("1");
        await Assertions.Expect(page.Locator(".verdict-chip[data-verdict='false-alarm'] strong")).ToHaveTextAsync("0");
        Assert.Equal(3, await page.EvaluateAsync<int>("() => window.taptConsole.verdictsRecorded"));
        await Screenshot(page, "console-review-history");

        // What the keys recorded is what the API has.
        var audit = await http.GetFromJsonAsync<JsonElement>($"/api/audit?jobId={jobId}");
        Assert.Equal(3, audit.GetProperty("verdicts").GetProperty("unreviewed").GetInt32());
        Assert.Equal(1, audit.GetProperty("verdicts").GetProperty("confirmed-attack").GetInt32());

        // Trends, the trail, and a bundle with its progress.
        await page.Locator("#trends-card > summary").ClickAsync();
        await Assertions.Expect(page.Locator(".trend-series")).ToHaveCountAsync(1);
        Assert.True(await page.Locator(".trend-chart rect").CountAsync() >= 1, "no bars in the trend chart");
        await page.Locator("#trail-card > summary").ClickAsync();
        await Assertions.Expect(page.Locator("#trail-table tbody tr[data-kind='verdict.recorded']")).ToHaveCountAsync(3);
        await Screenshot(page, "console-review-trends");
        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByRole(AriaRole.Button, new() { Name = "Export bundle" }).ClickAsync());
        await Assertions.Expect(page.Locator("#bundle-progress-text")).ToContainTextAsync("done");
        var saved = Path.Combine(GatewayFixture.ArtifactsFolder, download.SuggestedFilename);
        await download.SaveAsAsync(saved);
        using (var zip = ZipFile.OpenRead(saved))
        {
            Assert.Equal(5, zip.Entries.Count(e => e.FullName.StartsWith("images/", StringComparison.Ordinal)));
            Assert.NotNull(zip.GetEntry("index.csv"));
        }
        Assert.Equal(new FileInfo(saved).Length, await page.EvaluateAsync<long>("() => window.taptConsole.bundleBytes"));
        Assert.Empty(console.Errors);
    }

    private static async Task Screenshot(IPage page, string name)
    {
        await page.WaitForTimeoutAsync(300);   // let the bars' transitions finish
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(GatewayFixture.ArtifactsFolder, name + ".png"), FullPage = true });
    }
}
