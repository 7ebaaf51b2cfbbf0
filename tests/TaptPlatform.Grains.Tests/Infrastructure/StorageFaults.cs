using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Request = Azure.Core.Request;

namespace TaptPlatform.Grains.Tests.Infrastructure;

/// <summary>
/// Storage that fails on demand: a pipeline policy in the test cluster's storage clients that answers the requests
/// <see cref="Failing"/> matches with a 503 from the service, before the SDK's retries (so a failure is one answer).
/// </summary>
public sealed class StorageFaults : HttpPipelinePolicy
{
    private volatile Func<Request, bool>? _failing;

    /// <summary>Requests matched so far while failing.</summary>
    public int Failed => _failed;

    private int _failed;

    /// <summary>Makes matching requests fail until the returned scope is disposed.</summary>
    public IDisposable Failing(Func<Request, bool> matches)
    {
        _failing = matches;
        return new Scope(this);
    }

    /// <summary>Writes (anything but GET and HEAD) to a table whose name starts with <paramref name="table"/>.</summary>
    public static Func<Request, bool> WritesTo(string table) => r =>
        r.Method != RequestMethod.Get && r.Method != RequestMethod.Head && r.Uri.Path.Contains("/" + table, StringComparison.Ordinal);

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        Fail(message);
        ProcessNext(message, pipeline);
    }

    public override ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        Fail(message);
        return ProcessNextAsync(message, pipeline);
    }

    private void Fail(HttpMessage message)
    {
        if (_failing is not { } f || !f(message.Request)) return;
        Interlocked.Increment(ref _failed);
        throw new RequestFailedException(503, "storage fault injected by the test");
    }

    private sealed class Scope(StorageFaults faults) : IDisposable
    {
        public void Dispose() => faults._failing = null;
    }
}
