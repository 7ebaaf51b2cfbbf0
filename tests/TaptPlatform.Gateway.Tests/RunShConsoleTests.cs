using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RunShCollection
{
    public const string Name = "run.sh";
}

/// <summary>
/// The path a newcomer takes, end to end: <c>./run.sh</c> from a fresh copy of the repository (its own build, its
/// own Azurite, on free ports), the console URL it prints opened in Chromium, sign-in with the key it prints, the
/// shipped samples uploaded as a job and watched live to the end, the results and the audit of a flagged (attacked)
/// image, then run.sh stopped with SIGTERM and nothing of it left running. Screenshots: <c>artifacts/run-sh-*.png</c>.
/// </summary>
[Collection(RunShCollection.Name)]
public sealed partial class RunShConsoleTests : IAsyncLifetime
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(8);   // includes a Release build from scratch
    private readonly string _copy = Path.Combine(Path.GetTempPath(), "tapt-run-sh-" + Guid.NewGuid().ToString("N")[..8]);
    private RunSh? _run;

    public Task InitializeAsync()
    {
        RepositoryCopy.Make(RepositoryCopy.FindRoot(), _copy);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_run is not null) await _run.StopAsync();
        try { Directory.Delete(_copy, recursive: true); }
        catch (IOException) { }   // a file still being released: the temporary folder is cleaned by the system
    }

    [Fact]
    public async Task A_newcomer_runs_run_sh_opens_the_printed_console_url_submits_the_samples_and_sees_a_flagged_attack()
    {
        Assert.True(File.Exists(BrowserTests.Chromium), $"{BrowserTests.Chromium} is missing: install Debian's chromium package (./test.sh does)");
        _run = RunSh.Start(_copy, GatewayFixture.FreePort(), FreeRange(3));
        var (consoleUrl, tenantKey) = await _run.WaitForBannerAsync(StartTimeout);

        var samples = Directory.GetFiles(Path.Combine(_copy, "samples", "fashion"), "*.png").Order(StringComparer.Ordinal).ToArray();
        var attacked = samples.Count(p => Path.GetFileName(p).StartsWith("attacked-", StringComparison.Ordinal));
        Assert.True(samples.Length >= 20 && attacked >= 1, $"samples/fashion holds {samples.Length} images, {attacked} attacked");

        await using (var console = await ConsolePage.OpenAsync(consoleUrl))
        {
            var page = console.Page;
            await page.GotoAsync(consoleUrl.ToString());
            await page.GetByLabel("API key").FillAsync(tenantKey);
            await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
            await Assertions.Expect(page.Locator("#tenant-name")).ToHaveTextAsync("demo");

            // run.sh registered the default model: the configuration form offers it.
            await page.GetByRole(AriaRole.Link, new() { Name = "Prompt configurations" }).ClickAsync();
            await Assertions.Expect(page.Locator("#prompt-model-names option[value='fashion-clip-small']")).ToHaveCountAsync(1);

            // The job form already offers run.sh's vocabulary and configuration; the samples go through the file picker.
            await page.GetByRole(AriaRole.Link, new() { Name = "Jobs" }).ClickAsync();
            await Assertions.Expect(page.Locator("#job-vocabulary option[value='fashion']")).ToHaveCountAsync(1);
            await page.Locator("#job-name").FillAsync("Samples");
            await page.Locator("#file-input").SetInputFilesAsync(samples);
            await Assertions.Expect(page.Locator("#file-summary")).ToContainTextAsync($"{samples.Length} images chosen");
            await Screenshot(page, "run-sh-job-form");
            await page.GetByRole(AriaRole.Button, new() { Name = "Upload and start" }).ClickAsync();

            await Assertions.Expect(page.Locator("#tiles > li")).ToHaveCountAsync(samples.Length);
            await Assertions.Expect(page.Locator("#live-progress-text")).ToHaveTextAsync($"{samples.Length} / {samples.Length} images", new() { Timeout = 300_000 });
            await Assertions.Expect(page.Locator("#live-state")).ToHaveTextAsync("completed");
            await Assertions.Expect(page.Locator("#tiles > li[data-state='done']")).ToHaveCountAsync(samples.Length);
            var stats = await page.EvaluateAsync<int>("() => window.taptConsole.resultsApplied");
            Assert.Equal(samples.Length, stats);
            await Screenshot(page, "run-sh-job-done");

            // The attacked samples are flagged (plain CLIP and TAPT disagree); open one in the audit view.
            await page.GetByRole(AriaRole.Link, new() { Name = "Audit" }).ClickAsync();
            var flagged = page.Locator(".audit-item", new() { HasText = "attacked-" });
            await Assertions.Expect(flagged.First).ToBeVisibleAsync();
            Assert.True(await flagged.CountAsync() >= 1);
            await flagged.First.ClickAsync();
            await Assertions.Expect(page.Locator("#audit-detail")).ToBeVisibleAsync();
            await Assertions.Expect(page.Locator("#audit-defended-bars li").First).ToBeVisibleAsync();
            await Assertions.Expect(page.Locator("#audit-baseline-bars li").First).ToBeVisibleAsync();
            await page.WaitForFunctionAsync("() => document.getElementById('audit-image').naturalWidth > 0");
            await Screenshot(page, "run-sh-audit");

            Assert.Empty(console.Errors);
        }

        var leftovers = await _run.StopAsync();
        Assert.True(leftovers.Count == 0, "left running after run.sh stopped: " + string.Join("; ", leftovers));

        // The console's live connection sent the key as ?access_token= (browsers cannot set headers on WebSockets):
        // no log of the run may hold it.
        var secret = tenantKey[(tenantKey.LastIndexOf('.') + 1)..];
        foreach (var log in Directory.GetFiles(Path.Combine(_copy, ".data", "logs")))
            Assert.False((await File.ReadAllTextAsync(log)).Contains(secret, StringComparison.Ordinal), $"{Path.GetFileName(log)} holds the tenant key");
    }

    private static async Task Screenshot(IPage page, string name)
    {
        await page.WaitForTimeoutAsync(400);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(GatewayFixture.ArtifactsFolder, name + ".png"), FullPage = true });
    }

    /// <summary>The first of <paramref name="count"/> consecutive free loopback ports (Azurite takes blob, queue, table).</summary>
    private static int FreeRange(int count)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var first = Random.Shared.Next(20_000, 60_000);
            if (Enumerable.Range(first, count).All(IsFree)) return first;
        }
        throw new InvalidOperationException($"no {count} consecutive free ports found");

        static bool IsFree(int port)
        {
            try
            {
                using var l = new TcpListener(IPAddress.Loopback, port);
                l.Start();
                return true;
            }
            catch (SocketException) { return false; }
        }
    }

    /// <summary>A running <c>./run.sh</c> and what it printed.</summary>
    private sealed partial class RunSh
    {
        private readonly Process _process;
        private readonly string _root;
        private readonly System.Text.StringBuilder _output = new();

        private RunSh(Process process, string root)
        {
            _process = process;
            _root = root;
            process.OutputDataReceived += (_, e) => Append(e.Data);
            process.ErrorDataReceived += (_, e) => Append(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public string Output { get { lock (_output) return _output.ToString(); } }

        public static RunSh Start(string root, int port, int azuritePort)
        {
            var info = new ProcessStartInfo("bash", [Path.Combine(root, "run.sh")])
            {
                WorkingDirectory = root,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.Environment["TAPT_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            info.Environment["TAPT_AZURITE_PORT"] = azuritePort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            foreach (var name in new[] { "TAPT_DATA", "TAPT_TENANT", "TAPT_HOST", "ASPNETCORE_URLS", "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT" })
                info.Environment.Remove(name);
            return new RunSh(Process.Start(info)!, root);
        }

        /// <summary>The console URL and tenant key of run.sh's banner, once it printed them.</summary>
        public async Task<(Uri Console, string Key)> WaitForBannerAsync(TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < timeout)
            {
                var text = Output;
                if (ConsoleLine().Match(text) is { Success: true } url && KeyLine().Match(text) is { Success: true } key)
                    return (new Uri(url.Groups[1].Value), key.Groups[1].Value);
                if (_process.HasExited)
                    throw new InvalidOperationException($"run.sh exited with {_process.ExitCode} before it was ready:\n{text}\n{Logs()}");
                await Task.Delay(500);
            }
            throw new TimeoutException($"run.sh printed no console URL in {timeout}:\n{Output}\n{Logs()}");
        }

        /// <summary>SIGTERM to run.sh (as a closed terminal or a service manager sends); returns what is left running.</summary>
        public async Task<List<string>> StopAsync()
        {
            if (!_process.HasExited)
            {
                using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
                try { await _process.WaitForExitAsync(cts.Token); }
                catch (OperationCanceledException) { _process.Kill(entireProcessTree: true); }
            }
            // run.sh's children run in their own sessions: look for any process whose command line names this copy.
            var left = new List<string>();
            for (var i = 0; i < 20; i++)
            {
                left = ProcessesUnder(_root);
                if (left.Count == 0) break;
                await Task.Delay(500);
            }
            foreach (var p in left)
                if (int.TryParse(p.Split(' ')[0], out var pid))
                    try { Process.GetProcessById(pid).Kill(entireProcessTree: true); } catch (ArgumentException) { } catch (InvalidOperationException) { }
            return left;
        }

        private static List<string> ProcessesUnder(string root)
        {
            var found = new List<string>();
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId) continue;
                string cmdline;
                try { cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Trim(); }
                catch (IOException) { continue; }
                catch (UnauthorizedAccessException) { continue; }
                if (cmdline.Contains(root, StringComparison.Ordinal)) found.Add($"{pid} {cmdline}");
            }
            return found;
        }

        private string Logs()
        {
            var logs = Path.Combine(_root, ".data", "logs");
            if (!Directory.Exists(logs)) return "";
            return string.Join("\n", Directory.GetFiles(logs, "*.log").Select(f =>
            {
                var lines = File.ReadAllLines(f);
                return $"--- {Path.GetFileName(f)} (last 40 lines)\n" + string.Join("\n", lines.TakeLast(40));
            }));
        }

        private void Append(string? line)
        {
            if (line is null) return;
            lock (_output) _output.AppendLine(line);
        }

        [GeneratedRegex(@"console\s+(http://\S+)")]
        private static partial Regex ConsoleLine();

        [GeneratedRegex(@"tenant key\s+(\S+)")]
        private static partial Regex KeyLine();
    }
}
