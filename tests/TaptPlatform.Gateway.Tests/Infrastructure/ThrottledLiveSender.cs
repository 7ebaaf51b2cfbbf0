using System.Collections.Concurrent;
using TaptPlatform.Gateway.Live;

namespace TaptPlatform.Gateway.Tests.Infrastructure;

/// <summary>
/// The gateway's real sender, made slow for the connections a test names: each send to them first waits. This is
/// how a test gets a client that reads slowly, deterministically, without depending on socket buffer sizes.
/// </summary>
public sealed class ThrottledLiveSender(ILiveSender inner) : ILiveSender
{
    public static ConcurrentDictionary<string, TimeSpan> Slow { get; } = new(StringComparer.Ordinal);

    public async Task SendAsync(string connectionId, string method, object payload, CancellationToken cancellationToken)
    {
        if (Slow.TryGetValue(connectionId, out var delay)) await Task.Delay(delay, cancellationToken);
        await inner.SendAsync(connectionId, method, payload, cancellationToken);
    }
}
