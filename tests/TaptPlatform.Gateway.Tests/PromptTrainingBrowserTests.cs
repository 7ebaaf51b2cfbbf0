using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// The prompt training page in headless Chromium: a job created from dropped labelled images, its curve drawn live as epochs
/// finish, the before/after table, and one click to a prompt configuration on the artifact. Screenshot:
/// <c>artifacts/console-training.png</c>.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class PromptTrainingBrowserTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_training_started_from_the_console_shows_its_curve_live_and_its_artifact_becomes_a_prompt_configuration()
    {
        Assert.True(File.Exists(BrowserTests.Chromium), $"{BrowserTests.Chromium} is missing: install Debian's chromium package");
        var (_, key, http) = await gateway.TenantWithSetupAsync("trpage");
        using var _ = http;
        await using var console = await ConsolePage.OpenAsync(gateway.BaseAddress);
        var page = console.Page;
        await page.GotoAsync("/");
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page.Locator("#tenant-name")).Not.ToBeEmptyAsync();

        await page.GetByRole(AriaRole.Link, new() { Name = "Prompt training" }).ClickAsync();
        await Assertions.Expect(page.Locator("#train-label option")).ToHaveCountAsync(10);
        await Assertions.Expect(page.Locator("#train-model")).ToHaveValueAsync(TestModels.Tiny);
        await page.Locator("#train-artifact").FillAsync("from-console");
        await page.Locator("#train-epochs").FillAsync("2");
        await page.Locator("#train-shots").FillAsync("2");
        await page.Locator("#train-validation").FillAsync("30");
        // As a tenant's file system holds them: one folder holding a folder per label, where the label "t-shirt/top" can only
        // be the nested folder t-shirt/top; the tenant drops the outer folder.
        var folders = Enumerable.Range(0, 10).Select(c => new
        {
            path = TestModels.FashionLabels[c].Split('/'),
            files = PromptTrainingApiTests.PerClass(3).Where(i => TestModels.FashionTest.Labels[i] == c)
                .Select(i => new { name = $"fashion-{i}.png", data = Convert.ToBase64String(TestModels.FashionPng(i)) }).ToArray(),
        }).ToArray();
        Assert.Contains(folders, f => f.path.Length == 2);
        await page.EvaluateAsync(@"folders => {
            const fileEntry = f => ({ isFile: true, isDirectory: false, name: f.name,
                file: (ok) => ok(new File([Uint8Array.from(atob(f.data), c => c.charCodeAt(0))], f.name, { type: 'image/png' })) });
            const dirEntry = (name, children) => ({ isFile: false, isDirectory: true, name, createReader: () => {
                let done = false;
                return { readEntries: (ok) => { ok(done ? [] : children); done = true; } };
            } });
            const tree = { dirs: new Map(), files: [] };
            for (const d of folders) {
                let node = tree;
                for (const part of d.path) node = node.dirs.get(part) || node.dirs.set(part, { dirs: new Map(), files: [] }).get(part);
                node.files.push(...d.files.map(fileEntry));
            }
            const entryOf = (name, node) => dirEntry(name, [...[...node.dirs].map(([n, child]) => entryOf(n, child)), ...node.files]);
            const items = [{ kind: 'file', webkitGetAsEntry: () => entryOf('fashion-train', tree) }];
            const event = new Event('drop', { bubbles: true, cancelable: true });
            event.dataTransfer = { items, files: [] };
            document.getElementById('train-dropzone').dispatchEvent(event);
        }", folders);
        await Assertions.Expect(page.Locator("#train-file-summary")).ToContainTextAsync("30 images in 10 labels");
        await Assertions.Expect(page.Locator("#train-file-summary")).ToContainTextAsync("t-shirt/top 3");
        await page.GetByRole(AriaRole.Button, new() { Name = "Upload and start training" }).ClickAsync();

        await Assertions.Expect(page.Locator("#train-detail")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#train-state")).ToHaveTextAsync("completed", new() { Timeout = 180_000 });
        await Assertions.Expect(page.Locator("#train-progress-text")).ToContainTextAsync("4 / 4 epochs");
        await Assertions.Expect(page.Locator("#train-curve-table tbody tr")).ToHaveCountAsync(4);
        await Assertions.Expect(page.Locator("#train-chart circle.dot.line-clip")).ToHaveCountAsync(4);
        await Assertions.Expect(page.Locator("#train-chart circle.dot.line-tapt")).ToHaveCountAsync(2);
        await Assertions.Expect(page.Locator("#train-compare tbody tr").Nth(1)).ToContainTextAsync("from-console v1");
        Assert.True(await page.EvaluateAsync<int>("() => window.taptConsole.trainingEpochsApplied") >= 1, "no epoch arrived live");

        await page.Locator("#train-config-name").FillAsync("console-trained");
        await page.GetByRole(AriaRole.Button, new() { Name = "Use in a prompt configuration" }).ClickAsync();
        await Assertions.Expect(page.Locator(".toast").Last).ToContainTextAsync("console-trained");
        var configuration = await http.GetFromJsonAsync<JsonElement>("/api/prompt-configurations/console-trained");
        Assert.Equal("from-console", configuration.GetProperty("promptArtifact").GetString());
        await page.WaitForTimeoutAsync(200);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(GatewayFixture.ArtifactsFolder, "console-training.png"), FullPage = true });
        Assert.Empty(console.Errors);
    }
}
