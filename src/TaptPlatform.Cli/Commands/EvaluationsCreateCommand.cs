using System.CommandLine;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt evaluations create</c>: a robustness evaluation on a gateway from a folder of labelled images (one subfolder
/// per label), with the attack settings of <c>tapt eval</c>; uploads the images and starts it unless told not to.
/// The gateway validates the settings and the cost; its 4xx answer is printed as it says.
/// </summary>
public static class EvaluationsCreateCommand
{
    public const string Attacks = "pgd|cw|di|apgd-ce|apgd-t|fab-t|square|autoattack|autoattack-rand";

    /// <summary>The create request's settings, as the API names them.</summary>
    public sealed record Settings(string Vocabulary, string PromptConfiguration, string Attack, double[] Epsilons, int Steps, double? StepSize, int Restarts,
        int Queries, string Protocol, int Eot, int Seed, int BatchSize, string? Name);

    public static Command Create()
    {
        var server = GatewayCommands.Server();
        var key = GatewayCommands.Key();
        var images = LabelledFolder.Option();
        var vocabulary = CliOptions.Required("--vocabulary", "the name of one of your vocabularies (its labels name the subfolders)", "NAME");
        var configuration = CliOptions.Defaulted("--prompt-configuration", "default", "the name of one of your prompt configurations", "NAME");
        var attack = CliOptions.Choice("--attack", "pgd", "the attack (fab-t, square, autoattack and autoattack-rand as in tapt eval)", Attacks.Split('|'));
        var eps = CliOptions.Defaulted("--eps", "1/255", "one or more attack budgets (L-inf), comma separated, e.g. 1/255,4/255", "E[,E...]");
        var steps = CliOptions.Int("--steps", 10, "attack steps (APGD and FAB stages of AutoAttack too)", 1, 1000);
        var stepSize = CliOptions.OptionalNumber("--step-size", "attack step size (default 1/255)", 0, 1);
        var restarts = CliOptions.Int("--restarts", 1, "attack restarts (fab-t and AutoAttack: 1)", 1, 10);
        var queries = CliOptions.Int("--queries", 5000, "Square's query budget per image and restart (square, autoattack); adaptive: each query runs the whole defense", 1, 100_000);
        var protocol = CliOptions.Choice("--protocol", "nonadaptive", "attack the pre-trained prompts (nonadaptive) or through the defense (adaptive)", "nonadaptive", "adaptive");
        var eot = CliOptions.Int("--eot", 1, "EOT samples per attack step through the defense (autoattack-rand adaptive: at least 20)", 1, 32);
        var seed = CliOptions.Int("--seed", 0, "seed of the image order, the attacks and the views");
        var batch = CliOptions.Int("--batch", 16, "images per unit of work", 1, 256);
        var name = CliOptions.Text("--name", "a name to find the evaluation by");
        var noStart = CliOptions.Flag("--no-start", "create and upload only; start it later from the console or the API");
        var command = new Command("create", "Creates an evaluation from a folder of labelled images, uploads them and starts it.")
        {
            server, key, images, vocabulary, configuration, attack, eps, steps, stepSize, restarts, queries, protocol, eot, seed, batch, name, noStart,
        };
        command.SetAction((r, ct) => GatewayCommands.GuardedAsync("evaluations create", async () =>
        {
            var settings = new Settings(r.GetValue(vocabulary)!, r.GetValue(configuration)!, r.GetValue(attack)!, ParseEpsilons(r.GetValue(eps)!),
                r.GetValue(steps), r.GetValue(stepSize), r.GetValue(restarts), r.GetValue(queries), r.GetValue(protocol)!, r.GetValue(eot), r.GetValue(seed),
                r.GetValue(batch), r.GetValue(name));
            return await RunAsync(r.GetValue(server)!, r.GetValue(key)!, settings, r.GetValue(images)!, !r.GetValue(noStart), Console.Out, ct);
        }));
        return command;
    }

    /// <summary>Creates the evaluation, uploads the folder's images in batches, starts it (if asked) and prints its one-line description.</summary>
    public static async Task<int> RunAsync(string server, string key, Settings s, string folder, bool start, TextWriter stdout, CancellationToken ct)
    {
        var images = LabelledFolder.Images(folder);   // a wrong folder is refused before anything is created
        using var client = new GatewayClient(server, key);
        var created = await client.CreateEvaluationAsync(s, ct);   // the settings are named as the API names them
        await LabelledFolder.UploadAsync(folder, images, created.JobId, chunk => client.UploadLabelledImagesAsync($"api/evaluations/{Uri.EscapeDataString(created.JobId)}/images", chunk, ct), stdout);
        var info = start ? await client.StartEvaluationAsync(created.JobId, ct) : await client.GetEvaluationAsync(created.JobId, ct);
        stdout.WriteLine(EvaluationsCommand.Describe(info));
        return 0;
    }

    /// <summary>"1/255,4/255" or "0.0039" as fractions of the pixel range.</summary>
    public static double[] ParseEpsilons(string text)
    {
        var values = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(t => CliOptions.ParseNumber(t) is { } v && v >= 0 && v <= 1 ? v : throw new CliException($"--eps: '{t}' is not a budget in [0, 1] (e.g. 4/255)"))
            .ToArray();
        return values.Length > 0 ? values : throw new CliException("--eps lists no budget");
    }
}
