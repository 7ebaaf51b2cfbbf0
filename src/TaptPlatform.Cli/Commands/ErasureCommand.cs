using System.CommandLine;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt erasure</c>: the operator erases a tenant, follows the erasure, and verifies its signed summary later.</summary>
public static class ErasureCommand
{
    public static Command Create() => new("erasure", "Erases a tenant (operator key), follows the erasure and verifies its signed summary.")
    {
        Follow("start", """
            Erases a tenant: its keys are revoked before this returns, then everything of it is deleted.
            Starts the erasure (or shows the one started before) and prints its phase and counts; with --wait, follows it
            to the end; with --out, writes the signed summary there once it is done (keep it: it is the record).
            """, start: true),
        Follow("status", "Prints an erasure's phase and counts (--wait: until it is done); with --out, writes its signed summary once done.", start: false),
        Verify(),
    };

    private static Command Follow(string name, string description, bool start)
    {
        var server = CliOptions.Required("--server", "the gateway's URL", "URL");
        var key = CliOptions.Required("--operator-key", "the gateway's operator key", "KEY");
        var tenant = CliOptions.Required("--tenant", "the tenant's id", "ID");
        var wait = CliOptions.Flag("--wait", "wait until the erasure is done");
        var output = CliOptions.Text("--out", "write the signed summary (once done) to this file", "FILE");
        var command = new Command(name, description) { server, key, tenant, wait, output };
        command.SetAction(r => Run(() => StartAsync(r.GetValue(server)!, r.GetValue(key)!, r.GetValue(tenant)!, r.GetValue(wait), r.GetValue(output),
            Console.Out, CancellationToken.None, start)));
        return command;
    }

    private static Command Verify()
    {
        var server = CliOptions.Required("--server", "the gateway's URL", "URL");
        var key = CliOptions.Required("--operator-key", "the gateway's operator key", "KEY");
        var file = CliOptions.Required("--file", "a summary written by --out (or the JSON of GET /api/tenants/{id}/erasure)", "FILE");
        var command = new Command("verify", "Checks with the gateway that a saved erasure summary carries the platform's signature of exactly its content (exit 1 if not).")
        {
            server, key, file,
        };
        command.SetAction(r => Run(() => VerifyAsync(r.GetValue(server)!, r.GetValue(key)!, r.GetValue(file)!, Console.Out, CancellationToken.None)));
        return command;
    }

    private static int Run(Func<Task<int>> action)
    {
        try
        {
            return action().GetAwaiter().GetResult();
        }
        catch (GatewayException e)
        {
            Console.Error.WriteLine($"tapt erasure: {e.Message}");
            return 1;
        }
    }

    /// <summary>Starts (or, with <paramref name="start"/> false, reads) the erasure; prints it, optionally waits, and saves the summary.</summary>
    public static async Task<int> StartAsync(string server, string operatorKey, string tenantId, bool wait, string? output, TextWriter stdout,
        CancellationToken ct, bool start = true)
    {
        using var client = new GatewayClient(server, operatorKey);
        var status = start ? await client.EraseTenantAsync(tenantId, ct) : await client.GetErasureAsync(tenantId, ct);
        while (wait && Phase(status) != "done")
        {
            stdout.WriteLine(Describe(status));
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
            status = await client.GetErasureAsync(tenantId, ct);
        }
        stdout.WriteLine(Describe(status));
        if (output is not null && status.TryGetProperty("summary", out var summary) && summary.ValueKind == JsonValueKind.Object)
        {
            await File.WriteAllTextAsync(output, JsonSerializer.Serialize(summary, new JsonSerializerOptions { WriteIndented = true }), ct);
            stdout.WriteLine($"summary written to {output}");
        }
        return 0;
    }

    /// <summary>Verifies a saved summary with the gateway: 0 when valid, 1 when not.</summary>
    public static async Task<int> VerifyAsync(string server, string operatorKey, string file, TextWriter stdout, CancellationToken ct)
    {
        JsonElement summary;
        try
        {
            summary = JsonDocument.Parse(await File.ReadAllTextAsync(file, ct)).RootElement;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            throw new CliException($"--file {file}: {e.Message}");
        }
        if (summary.ValueKind == JsonValueKind.Object && summary.TryGetProperty("summary", out var inner) && inner.ValueKind == JsonValueKind.Object) summary = inner;
        using var client = new GatewayClient(server, operatorKey);
        var answer = await client.VerifyErasureAsync(summary, ct);
        var valid = answer.GetProperty("valid").GetBoolean();
        stdout.WriteLine($"{(valid ? "valid" : "NOT VALID")}: {answer.GetProperty("detail").GetString()}");
        return valid ? 0 : 1;
    }

    private static string? Phase(JsonElement status) => status.TryGetProperty("phase", out var p) ? p.GetString() : null;

    private static string Describe(JsonElement status)
    {
        static string Counts(JsonElement s, string name) =>
            s.TryGetProperty(name, out var c) && c.ValueKind == JsonValueKind.Object ? string.Join(", ", c.EnumerateObject().Select(p => $"{p.Value} {p.Name}")) : "";
        var error = status.TryGetProperty("lastError", out var e) && e.ValueKind == JsonValueKind.String ? $" (retrying: {e.GetString()})" : "";
        return $"tenant {status.GetProperty("tenantId").GetString()}: {Phase(status)}{error}; blobs [{Counts(status, "blobs")}]; " +
            $"grain states [{Counts(status, "grainStates")}]; table rows [{Counts(status, "tableRows")}]";
    }
}
