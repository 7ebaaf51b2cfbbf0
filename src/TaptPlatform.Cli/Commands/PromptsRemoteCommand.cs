using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt prompts upload|list|download|delete</c>: the tenant's own prompt artifacts on a gateway (the API's
/// <c>/api/prompt-artifacts</c>); a prompt configuration then uses one by name and version.
/// </summary>
public static class PromptsRemoteCommand
{
    public static IEnumerable<Command> Create() => [Upload(), List(), Download(), Delete()];

    private static (Option<string> Server, Option<string> Key) Gateway() =>
        (CliOptions.Required("--server", "the gateway's URL", "URL"), CliOptions.Required("--key", "the tenant's API key", "KEY"));

    private static Command Upload()
    {
        var (server, key) = Gateway();
        var name = new Argument<string>("name") { Description = "the artifact's name (each upload is its next version)", HelpName = "NAME" };
        var file = new Argument<string>("file") { Description = "the .safetensors prompt artifact (tapt prompts train/calibrate write one)", HelpName = "FILE" };
        var model = CliOptions.Required("--for-model", "the model (its name on the cluster) the artifact was trained for", "MODEL");
        var command = new Command("upload", "Uploads a prompt artifact to the gateway; it is checked against the model and kept as the next version.") { server, key, name, file, model };
        command.SetAction((r, ct) => Run("upload", async stdout =>
        {
            using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
            var path = r.GetValue(file)!;
            if (!File.Exists(path)) throw new CliException($"no such file: {path}");
            stdout.WriteLine(Describe(await client.UploadPromptArtifactAsync(r.GetValue(name)!, r.GetValue(model)!, path, ct)));
        }));
        return command;
    }

    private static Command List()
    {
        var (server, key) = Gateway();
        var model = CliOptions.Text("--for-model", "also list the operator's artifacts of this model", "MODEL");
        var command = new Command("list", "Lists the tenant's prompt artifact versions on the gateway.") { server, key, model };
        command.SetAction((r, ct) => Run("list", async stdout =>
        {
            using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
            foreach (var a in (await client.ListPromptArtifactsAsync(r.GetValue(model), ct)).EnumerateArray()) stdout.WriteLine(Describe(a));
        }));
        return command;
    }

    private static Command Download()
    {
        var (server, key) = Gateway();
        var name = new Argument<string>("name") { HelpName = "NAME", Description = "the artifact's name" };
        var version = new Argument<int>("version") { HelpName = "VERSION", Description = "the version to download" };
        var output = CliOptions.Required("--output", "where to write the .safetensors file", "FILE");
        var command = new Command("download", "Downloads one version of a prompt artifact.") { server, key, name, version, output };
        command.SetAction((r, ct) => Run("download", async stdout =>
        {
            using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
            var path = r.GetValue(output)!;
            var tmp = path + ".part";
            await using (var f = File.Create(tmp)) await client.DownloadPromptArtifactAsync(r.GetValue(name)!, r.GetValue(version), f, ct);
            File.Move(tmp, path, overwrite: true);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path} ({new FileInfo(path).Length} bytes)"));
        }));
        return command;
    }

    private static Command Delete()
    {
        var (server, key) = Gateway();
        var name = new Argument<string>("name") { HelpName = "NAME", Description = "the artifact's name" };
        var version = CliOptions.Text("--version", "one version (default: every version)", "VERSION");
        var command = new Command("delete", "Deletes a prompt artifact version (or all); refused while a prompt configuration uses it.") { server, key, name, version };
        command.SetAction((r, ct) => Run("delete", async stdout =>
        {
            int? v = r.GetValue(version) is { } text ? int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 ? n
                : throw new CliException($"--version must be a whole number of at least 1, got '{text}'") : null;
            using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
            await client.DeletePromptArtifactAsync(r.GetValue(name)!, v, ct);
            stdout.WriteLine(v is null ? "deleted every version" : $"deleted version {v}");
        }));
        return command;
    }

    private static async Task<int> Run(string action, Func<TextWriter, Task> body)
    {
        try
        {
            await body(Console.Out);
            return 0;
        }
        catch (Exception e) when (e is GatewayException or CliException)
        {
            Console.Error.WriteLine($"tapt prompts {action}: {e.Message}");
            return 1;
        }
    }

    /// <summary>One line: name, version, owner, model, design, size and checksum.</summary>
    public static string Describe(JsonElement a) => string.Create(CultureInfo.InvariantCulture,
        $"{a.GetProperty("name").GetString()} v{a.GetProperty("version").GetInt32()} ({a.GetProperty("owner").GetString()}) model {a.GetProperty("model").GetString()} design {a.GetProperty("design").GetString()}, {a.GetProperty("bytes").GetInt64()} bytes, sha256 {a.GetProperty("sha256").GetString()}");
}
