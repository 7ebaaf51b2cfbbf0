using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace TaptPlatform.Grains.Tests.Infrastructure;

/// <summary>
/// Azure Storage for the tests: <c>$TAPT_STORAGE</c> when set; otherwise an Azurite already listening on the
/// default ports (10000 blob, 10001 queue, 10002 table); otherwise an Azurite started from the repository's local
/// install (<c>.tools/azurite</c>, see .ci/run) on free loopback ports with a temporary data folder, stopped on dispose.
/// </summary>
public sealed class Azurite : IDisposable
{
    public const string AccountName = "devstoreaccount1";
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly Process? _process;
    private readonly string? _dataFolder;

    private Azurite(string connectionString, string source, Process? process = null, string? dataFolder = null)
    {
        ConnectionString = connectionString;
        Source = source;
        _process = process;
        _dataFolder = dataFolder;
    }

    public string ConnectionString { get; }

    /// <summary>Where the storage came from (for test output).</summary>
    public string Source { get; }

    public static Azurite Start()
    {
        var env = Environment.GetEnvironmentVariable("TAPT_STORAGE");
        if (!string.IsNullOrWhiteSpace(env)) return new Azurite(env, "$TAPT_STORAGE");
        if (Listening(10000) && Listening(10002)) return new Azurite(ConnectionStringFor(10000, 10001, 10002), "Azurite already running on 10000-10002");

        var root = RepositoryRoot.Find();
        var bin = Path.Combine(root, ".tools", "azurite", "node_modules", ".bin", "azurite");
        if (!File.Exists(bin))
            throw new InvalidOperationException(
                $"Azurite is not installed at {bin} and no Azurite listens on 127.0.0.1:10000. Install it with " +
                "'npm install --prefix .tools/azurite azurite@3.37.0' (as .ci/run does) or set TAPT_STORAGE to a storage connection string.");
        var (blob, queue, table) = (FreePort(), FreePort(), FreePort());
        var data = Directory.CreateTempSubdirectory("tapt-azurite-").FullName;
        var psi = new ProcessStartInfo(bin)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
                 {
                     "--silent", "--skipApiVersionCheck", "--loose", "--location", data,
                     "--blobHost", "127.0.0.1", "--blobPort", blob.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--queueHost", "127.0.0.1", "--queuePort", queue.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--tableHost", "127.0.0.1", "--tablePort", table.ToString(System.Globalization.CultureInfo.InvariantCulture),
                 })
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start Azurite");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (!(Listening(blob) && Listening(table)))
        {
            if (process.HasExited) throw new InvalidOperationException($"Azurite exited with code {process.ExitCode} before listening");
            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("Azurite did not start listening within 60 s");
            }
            Thread.Sleep(100);
        }
        return new Azurite(ConnectionStringFor(blob, queue, table), $"Azurite started on {blob}/{queue}/{table}", process, data);
    }

    public static string ConnectionStringFor(int blob, int queue, int table) =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};" +
        $"BlobEndpoint=http://127.0.0.1:{blob}/{AccountName};QueueEndpoint=http://127.0.0.1:{queue}/{AccountName};TableEndpoint=http://127.0.0.1:{table}/{AccountName};";

    private static bool Listening(int port)
    {
        try
        {
            using var client = new TcpClient();
            return client.ConnectAsync(IPAddress.Loopback, port).Wait(TimeSpan.FromMilliseconds(300)) && client.Connected;
        }
        catch (Exception e) when (e is SocketException or AggregateException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _process?.Dispose();
        if (_dataFolder is not null)
        {
            try { Directory.Delete(_dataFolder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

/// <summary>The repository root: the nearest folder above the test binaries holding TaptPlatform.sln.</summary>
public static class RepositoryRoot
{
    public static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "TaptPlatform.sln"))) return d.FullName;
        throw new InvalidOperationException($"TaptPlatform.sln not found above {AppContext.BaseDirectory}");
    }
}
