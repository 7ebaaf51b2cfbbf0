using TaptPlatform.Cli.Commands;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary><c>tapt submit --watch</c> and <c>tapt audit</c> against the real gateway (HTTP upload, SignalR progress).</summary>
[Collection(GatewayCollection.Name)]
public sealed class CliClientTests(GatewayFixture gateway)
{
    [Fact]
    public async Task Submit_uploads_a_folder_watches_the_job_live_and_audit_lists_its_flagged_images()
    {
        // A confidence threshold of 1 flags every image, so the audit has something to list.
        var (_, key, http) = await gateway.TenantWithSetupAsync("cli", minimumConfidence: 1.0);
        http.Dispose();
        var folder = Directory.CreateTempSubdirectory("tapt-cli-images-").FullName;
        try
        {
            foreach (var (name, bytes) in GatewayFixture.FashionImages(Enumerable.Range(0, 7))) await File.WriteAllBytesAsync(Path.Combine(folder, name), bytes);
            await File.WriteAllTextAsync(Path.Combine(folder, "notes.txt"), "not an image");   // skipped by extension
            var files = SubmitCommand.CollectImages([folder]);
            Assert.Equal(7, files.Count);

            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            // Three images per upload request: the folder goes up in three requests.
            var exit = await SubmitCommand.RunAsync(gateway.BaseAddress.ToString(), key, "fashion", "default", "cli job", 0, 3, watch: true,
                files, stdout, stderr, timeout.Token);
            var output = stdout.ToString();
            var progress = stderr.ToString();
            Assert.True(exit == 0, $"exit {exit}\n{progress}\n{output}");
            Assert.Contains("uploaded 3/7", progress);
            Assert.Contains("uploaded 7/7", progress);
            Assert.Contains("7/7 images (100.0%)", progress);        // the progress display reached the end
            Assert.DoesNotContain("polling instead", progress);     // the hub was used
            foreach (var (name, _) in GatewayFixture.FashionImages(Enumerable.Range(0, 7))) Assert.Contains(name, output);
            Assert.Contains("completed: 7 succeeded, 0 failed, 7 flagged of 7", output);
            var jobId = output.Split("job ")[^1].Split(' ')[0];

            var audit = new StringWriter();
            Assert.Equal(0, await AuditCommand.RunAsync(gateway.BaseAddress.ToString(), key, jobId, null, 100, audit, timeout.Token));
            var listing = audit.ToString();
            Assert.Contains("7 flagged image(s) in 1 job(s)", listing);
            Assert.Contains("lowConfidence", listing);
            Assert.Contains($"/api/audit/{jobId}/0", listing);
            Assert.Contains("by verdict: confirmed-attack 0, false-alarm 0, needs-follow-up 0, unreviewed 7", listing);

            // A wrong key is a one-line error, not a crash.
            var denied = await Assert.ThrowsAsync<GatewayException>(() =>
                AuditCommand.RunAsync(gateway.BaseAddress.ToString(), key + "x", null, null, 10, new StringWriter(), timeout.Token));
            Assert.Contains("401", denied.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
