using System.CommandLine;
using System.Globalization;
using static System.FormattableString;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt trainings create|status|follow|cancel|report|configure</c>: prompt training jobs on a gateway (the API's
/// <c>/api/prompt-trainings</c>); <c>tapt prompts train</c> trains in this process instead.
/// </summary>
public static class TrainingsCommand
{
    private const string Group = "trainings";
    private const string IdHelp = "the training job's id (train-…)";

    public static Command Create() => new(Group, """
        Prompt training jobs on a gateway: APT on a tenant's own labelled images, ending as a version of one of its prompt
        artifacts. create uploads a folder of labelled images (one subfolder per label) and starts a job; status ID prints
        its state and epochs; follow ID prints each epoch as it is recorded until the job ends; cancel ID stops it within
        a training step (no artifact is made); report ID prints the curve, the held-out accuracy before and after and the
        artifact version; configure ID makes a prompt configuration version that uses the finished job's artifact.
        """)
    {
        TrainingsCreateCommand.Create(),
        GatewayCommands.ById(Group, "status", "Prints a training job's state and epochs done.", IdHelp, async (client, id, _, stdout, ct) =>
        {
            stdout.WriteLine(Describe(await client.GetTrainingAsync(id, ct)));
            return 0;
        }),
        GatewayCommands.ById(Group, "follow", "Prints each epoch of a training job as it is recorded, until the job ends; exit 1 unless it completed.", IdHelp,
            (client, id, _, stdout, ct) => FollowAsync(client, id, stdout, TimeSpan.FromSeconds(2), ct)),
        GatewayCommands.ById(Group, "cancel", "Cancels a training job within a training step; no artifact is made.", IdHelp, async (client, id, _, stdout, ct) =>
        {
            stdout.WriteLine(Describe(await client.CancelTrainingAsync(id, ct)));
            return 0;
        }),
        GatewayCommands.ById(Group, "report", "Prints a training job's curve, held-out accuracy before and after, and its artifact version.", IdHelp,
            async (client, id, _, stdout, ct) =>
            {
                PrintReport(await client.GetTrainingAsync(id, ct), stdout);
                return 0;
            }),
        Configure(),
    };

    private static Command Configure()
    {
        var name = CliOptions.Text("--name", "the prompt configuration's name (default: the artifact's)", "NAME");
        return GatewayCommands.ById(Group, "configure", "Adds a prompt configuration version that uses the finished job's artifact.", IdHelp,
            async (client, id, parsed, stdout, ct) =>
            {
                var made = await client.ConfigureFromTrainingAsync(id, parsed.GetValue(name), ct);
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"prompt configuration {made.GetProperty("name").GetString()} v{made.GetProperty("version").GetInt32()}"));
                return 0;
            }, name);
    }

    /// <summary>Polls the job every <paramref name="every"/>, printing each newly recorded epoch, then its end; 0 when it completed.</summary>
    public static async Task<int> FollowAsync(GatewayClient client, string id, TextWriter stdout, TimeSpan every, CancellationToken ct)
    {
        var printed = 0;
        string? waiting = null;
        while (true)
        {
            var t = await client.GetTrainingAsync(id, ct);
            foreach (var e in t.Curve.Skip(printed)) stdout.WriteLine(DescribeEpoch(e, t.EpochsTotal, printed++ + 1));
            if (t.Waiting != waiting && (waiting = t.Waiting) is not null) stdout.WriteLine($"waiting: {waiting}");
            if (t.IsFinal)
            {
                stdout.WriteLine(Describe(t));
                return t.State == "completed" ? 0 : 1;
            }
            await Task.Delay(every, ct);
        }
    }

    /// <summary>One line: id, state, epochs done of the total, the artifact once made, and why it stopped (if it did).</summary>
    public static string Describe(TrainingInfo t)
    {
        var split = t.TrainImages > 0 ? Invariant($": {t.TrainImages} to train on, {t.ValidationImages} held out") : "";
        var artifact = t.Artifact is { } a ? Invariant($", artifact {a.Name} v{a.Version} ({a.Design})") : "";
        return Invariant($"{t.JobId} {t.State}: {t.EpochsDone} / {t.EpochsTotal} epochs ({t.Images} images{split}){artifact}{(t.Error is null ? "" : $" — {t.Error}")}");
    }

    private static string DescribeEpoch(TrainingEpochInfo e, int total, int n)
    {
        var robust = e.Prompts == "adversarial" ? $", robust {Percent(e.Validation.Robust)}" : "";
        return Invariant($"epoch {n}/{total} ({e.Prompts} prompts, their epoch {e.Epoch}): loss {e.Loss:0.0000}, held-out clean {Percent(e.Validation.Clean)}{robust}, {e.Seconds:0.0} s on {e.Silo}");
    }

    public static void PrintReport(TrainingInfo t, TextWriter w)
    {
        w.WriteLine(Describe(t));
        if (t.Curve.Count > 0)
        {
            w.WriteLine();
            TextTable.Write(w, ["#", "prompts", "epoch", "lr", "loss", "batches clean", "batches adv.", "held-out clean", "held-out robust", "s"],
                t.Curve.Select((e, i) => (IReadOnlyList<string>)[
                    (i + 1).ToString(CultureInfo.InvariantCulture), e.Prompts, e.Epoch.ToString(CultureInfo.InvariantCulture), e.LearningRate.ToString("G3", CultureInfo.InvariantCulture),
                    e.Loss.ToString("0.0000", CultureInfo.InvariantCulture), Percent(e.TrainCleanAccuracy), e.TrainAdversarialAccuracy is { } adv ? Percent(adv) : "",
                    Percent(e.Validation.Clean), e.Prompts == "adversarial" ? Percent(e.Validation.Robust) : "", e.Seconds.ToString("0.0", CultureInfo.InvariantCulture)]));
        }
        w.WriteLine();
        w.WriteLine($"held-out before (the model's default artifact): {Accuracy(t.Before)}");
        w.WriteLine($"held-out after (the trained adversarial prompts): {Accuracy(t.After)}");
    }

    private static string Accuracy(TrainingAccuracyInfo? a) => a is null ? "not yet"
        : string.Create(CultureInfo.InvariantCulture, $"clean {Percent(a.Clean)}, robust (PGD-10) {Percent(a.Robust)} on {a.Images} images");

    private static string Percent(double fraction) => double.IsNaN(fraction) ? "—" : TextTable.Percent((float)fraction);
}
