using System.CommandLine;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt trainings create</c>: a prompt training job on a gateway from a folder of labelled images (one subfolder per
/// label); uploads the images and starts it unless told not to, and with --follow prints its epochs until it ends.
/// Settings left out take the gateway's defaults; the gateway validates them and its 4xx answer is printed as it says.
/// </summary>
public static class TrainingsCreateCommand
{
    /// <summary>The create request's settings, as the API names them (null: the gateway's default).</summary>
    public sealed record Settings(string Vocabulary, string Model, string ArtifactName, string? Design = null, int? Epochs = null, double? Epsilon = null,
        int? ShotsPerClass = null, double? ValidationFraction = null, int? Seed = null, int? BatchSize = null, double? LearningRate = null, string? Name = null);

    public static Command Create()
    {
        var server = GatewayCommands.Server();
        var key = GatewayCommands.Key();
        var images = LabelledFolder.Option();
        var vocabulary = CliOptions.Required("--vocabulary", "the name of one of your vocabularies (its labels name the subfolders)", "NAME");
        var model = CliOptions.Required("--model", "the model in the cluster's catalog the prompts are trained for", "NAME");
        var artifact = CliOptions.Required("--artifact", "the prompt artifact the result is stored under, as its next version", "NAME");
        var design = CliOptions.OptionalChoice("--design", "the prompts' design (default VLI)", "V", "VLI", "VLJ");
        var epochs = CliOptions.OptionalInt("--epochs", "epochs of each prompt set, adversarial then clean (default 2)", 1, 50);
        var eps = CliOptions.OptionalNumber("--eps", "the training attack's budget (L-inf), e.g. 1/255 (the default)", 1e-9, 16.0 / 255);
        var shots = CliOptions.OptionalInt("--shots", "training images per label at most (default 16)", 1, 1000);
        var validation = CliOptions.OptionalNumber("--validation", "share of each label's images held out (default 0.2)", 0.05, 0.5);
        var seed = CliOptions.OptionalInt("--seed", "seed of the split and the training (default 1)", int.MinValue, int.MaxValue);
        var batch = CliOptions.OptionalInt("--batch", "training batch size (default 32)", 1, 1024);
        var lr = CliOptions.OptionalNumber("--lr", "peak learning rate (default 0.0035)", 1e-12, 1);
        var name = CliOptions.Text("--name", "a name to find the job by");
        var noStart = CliOptions.Flag("--no-start", "create and upload only; start it later from the console or the API");
        var follow = CliOptions.Flag("--follow", "print each epoch as it is recorded until the job ends (exit 1 unless it completed)");
        var command = new Command("create", "Creates a prompt training job from a folder of labelled images, uploads them and starts it.")
        {
            server, key, images, vocabulary, model, artifact, design, epochs, eps, shots, validation, seed, batch, lr, name, noStart, follow,
        };
        command.SetAction((r, ct) => GatewayCommands.GuardedAsync("trainings create", async () =>
        {
            var settings = new Settings(r.GetValue(vocabulary)!, r.GetValue(model)!, r.GetValue(artifact)!, r.GetValue(design), r.GetValue(epochs), r.GetValue(eps),
                r.GetValue(shots), r.GetValue(validation), r.GetValue(seed), r.GetValue(batch), r.GetValue(lr), r.GetValue(name));
            return await RunAsync(r.GetValue(server)!, r.GetValue(key)!, settings, r.GetValue(images)!, !r.GetValue(noStart), r.GetValue(follow), Console.Out, ct);
        }));
        return command;
    }

    /// <summary>Creates the job, uploads the folder's images, starts it (if asked), prints its one-line description and follows it (if asked).</summary>
    public static async Task<int> RunAsync(string server, string key, Settings s, string folder, bool start, bool follow, TextWriter stdout, CancellationToken ct,
        TimeSpan? pollEvery = null)
    {
        var images = LabelledFolder.Images(folder);   // a wrong folder is refused before anything is created
        using var client = new GatewayClient(server, key);
        var created = await client.CreateTrainingAsync(s, ct);   // the settings are named as the API names them
        await LabelledFolder.UploadAsync(folder, images, created.JobId, chunk => client.UploadLabelledImagesAsync(GatewayClient.TrainingPath(created.JobId, "/images"), chunk, ct), stdout);
        var info = start ? await client.StartTrainingAsync(created.JobId, ct) : await client.GetTrainingAsync(created.JobId, ct);
        stdout.WriteLine(TrainingsCommand.Describe(info));
        return start && follow ? await TrainingsCommand.FollowAsync(client, created.JobId, stdout, pollEvery ?? TimeSpan.FromSeconds(2), ct) : 0;
    }
}
