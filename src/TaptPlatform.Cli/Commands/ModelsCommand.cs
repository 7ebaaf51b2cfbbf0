using System.CommandLine;
using System.Globalization;
using System.IO.Compression;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt models register|list</c>: the platform's model registry on a gateway (the API's <c>/api/models</c>).</summary>
public static class ModelsCommand
{
    public static Command Create()
    {
        var command = new Command("models", "The model registry of a gateway: register a Hugging Face CLIP folder (operator), list models.");
        command.Subcommands.Add(Register());
        command.Subcommands.Add(List());
        return command;
    }

    private static (Option<string> Server, Option<string> Key) Gateway(string whose) =>
        (CliOptions.Required("--server", "the gateway's URL", "URL"), CliOptions.Required("--key", whose, "KEY"));

    private static Command Register()
    {
        var (server, key) = Gateway("the operator key");
        var name = new Argument<string>("name") { Description = "the model's name (what prompt configurations use)", HelpName = "NAME" };
        var folder = new Argument<string?>("folder") { Description = "the local Hugging Face CLIP folder to upload", HelpName = "FOLDER", Arity = ArgumentArity.ZeroOrOne };
        var prefix = CliOptions.Text("--prefix", "register a folder already in the models container instead of uploading one", "PREFIX");
        var command = new Command("register", "Registers a model: uploads the folder as a zip (or names one in storage with --prefix); the platform verifies it by loading it.")
            { server, key, name, folder, prefix };
        command.SetAction((r, ct) => Run("register", async stdout =>
        {
            using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
            await RegisterAsync(client, r.GetValue(name)!, r.GetValue(folder), r.GetValue(prefix), stdout, ct);
        }));
        return command;
    }

    private static Command List()
    {
        var (server, key) = Gateway("a tenant's API key or the operator key");
        var command = new Command("list", "Lists the registered models (the operator also sees the silo serving each).") { server, key };
        command.SetAction((r, ct) => Run("list", async stdout =>
        {
            using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
            await ListAsync(client, stdout, ct);
        }));
        return command;
    }

    /// <summary>Registers a local folder (zipped on the way) or a folder in the models container, and prints the model.</summary>
    public static async Task RegisterAsync(GatewayClient client, string name, string? folder, string? prefix, TextWriter stdout, CancellationToken ct)
    {
        if ((folder is null) == (prefix is null)) throw new CliException("give either a FOLDER to upload or --prefix, not both and not neither");
        if (prefix is not null)
        {
            stdout.WriteLine(Describe(await client.RegisterModelPrefixAsync(name, prefix, ct)));
            return;
        }
        if (!Directory.Exists(folder)) throw new CliException($"no such folder: {folder}");
        var zip = Path.Combine(Path.GetTempPath(), $"tapt-model-{Guid.NewGuid():N}.zip");
        try
        {
            ZipFile.CreateFromDirectory(folder, zip, CompressionLevel.Fastest, includeBaseDirectory: false);
            stdout.WriteLine(Describe(await client.RegisterModelAsync(name, zip, ct)));
        }
        finally
        {
            File.Delete(zip);
        }
    }

    /// <summary>Prints one line per registered model (with the serving silo when the key is the operator's).</summary>
    public static async Task ListAsync(GatewayClient client, TextWriter stdout, CancellationToken ct)
    {
        foreach (var listing in (await client.ListModelsAsync(ct)).EnumerateArray())
        {
            var line = Describe(listing.GetProperty("model"));
            if (listing.GetProperty("silo").GetString() is { } silo) line += $", served by {silo}{(listing.GetProperty("loaded").GetBoolean() ? " (loaded)" : "")}";
            stdout.WriteLine(line);
        }
    }

    private static async Task<int> Run(string action, Func<TextWriter, Task> body)
    {
        try
        {
            await body(Console.Out);
            return 0;
        }
        catch (Exception e) when (e is GatewayException or CliException or IOException)
        {
            Console.Error.WriteLine($"tapt models {action}: {e.Message}");
            return 1;
        }
    }

    /// <summary>One line: name, resolution, size, files, checksum.</summary>
    public static string Describe(JsonElement m) => string.Create(CultureInfo.InvariantCulture,
        $"{m.GetProperty("name").GetString()}: {m.GetProperty("imageSize").GetInt32()}px, patch {m.GetProperty("patchSize").GetInt32()}, width {m.GetProperty("visionWidth").GetInt32()}, {m.GetProperty("visionLayers").GetInt32()} layers, {m.GetProperty("bytes").GetInt64()} bytes in {m.GetProperty("files").GetArrayLength()} files, {m.GetProperty("checksum").GetString()}");
}
