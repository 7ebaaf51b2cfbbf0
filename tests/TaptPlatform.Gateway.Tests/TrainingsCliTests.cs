using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Cli;
using TaptPlatform.Cli.Commands;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary><c>tapt trainings</c> against the real gateway: a folder of labelled images to a followed run, its report and a configuration.</summary>
[Collection(GatewayCollection.Name)]
public sealed class TrainingsCliTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_training_created_by_the_cli_is_followed_to_its_artifact_reported_and_configured_and_bad_input_is_one_line()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("clitrain");
        using var _ = http;
        var server = gateway.BaseAddress.ToString();
        var folder = Directory.CreateTempSubdirectory("tapt-train-images-");
        try
        {
            foreach (var i in PromptTrainingApiTests.PerClass(3))
            {
                var label = Directory.CreateDirectory(Path.Combine(folder.FullName, TestModels.FashionLabels[TestModels.FashionTest.Labels[i]]));
                await File.WriteAllBytesAsync(Path.Combine(label.FullName, $"fashion-{i}.png"), TestModels.FashionPng(i));
            }
            Directory.CreateDirectory(Path.Combine(folder.FullName, "not-a-label"));
            await File.WriteAllBytesAsync(Path.Combine(folder.FullName, "not-a-label", "odd.png"), TestModels.FashionPng(0));
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
            var settings = new TrainingsCreateCommand.Settings("fashion", TestModels.Tiny, "cli-trained", Epochs: 1, ShotsPerClass: 2, ValidationFraction: 0.3, BatchSize: 8);
            var output = new StringWriter();

            var exit = await TrainingsCreateCommand.RunAsync(server, key, settings, folder.FullName, start: true, follow: true, output, timeout.Token, TimeSpan.FromMilliseconds(200));

            var text = output.ToString();
            Assert.True(exit == 0, text);
            Assert.Contains("refused odd.png: UnknownLabel", text, StringComparison.Ordinal);   // the rest of the folder goes on
            Assert.Contains("running: 0 / 2 epochs (30 images: 20 to train on, 10 held out)", text, StringComparison.Ordinal);
            Assert.Contains("epoch 1/2 (adversarial prompts, their epoch 1): loss ", text, StringComparison.Ordinal);
            Assert.Contains("epoch 2/2 (clean prompts, their epoch 1): loss ", text, StringComparison.Ordinal);
            Assert.Contains("completed: 2 / 2 epochs (30 images: 20 to train on, 10 held out), artifact cli-trained v1 (VLI)", text, StringComparison.Ordinal);
            var jobId = text.Split('\n').First(l => l.StartsWith("train-", StringComparison.Ordinal)).Split(' ')[0];

            using var client = new GatewayClient(server, key);
            var report = new StringWriter();
            TrainingsCommand.PrintReport(await client.GetTrainingAsync(jobId, timeout.Token), report);
            var printed = report.ToString();
            Assert.Contains("held-out before (the model's default artifact): clean ", printed, StringComparison.Ordinal);
            Assert.Contains("on 10 images", printed, StringComparison.Ordinal);
            Assert.Equal(2, printed.Split('\n').Count(l => l.StartsWith("1  adversarial", StringComparison.Ordinal) || l.StartsWith("2  clean", StringComparison.Ordinal)));

            var configured = await client.ConfigureFromTrainingAsync(jobId, "cli-config", timeout.Token);
            Assert.Equal("cli-config", configured.GetProperty("name").GetString());
            var artifacts = await http.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts");
            Assert.Contains(artifacts.EnumerateArray(), a => a.GetProperty("name").GetString() == "cli-trained" && a.GetProperty("trainingJobId").GetString() == jobId);

            // A vocabulary the tenant does not have: the gateway's problem as one line, and nothing uploaded.
            var missing = await Assert.ThrowsAsync<GatewayException>(() => TrainingsCreateCommand.RunAsync(server, key, settings with { Vocabulary = "nope" },
                folder.FullName, start: true, follow: false, new StringWriter(), timeout.Token));
            Assert.Contains("404", missing.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<CliException>(() => TrainingsCreateCommand.RunAsync(server, key, settings, Path.Combine(folder.FullName, "absent"),
                start: true, follow: false, new StringWriter(), timeout.Token));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}
