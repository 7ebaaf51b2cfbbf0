using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Telemetry;

namespace TaptPlatform.Gateway.Live;

/// <summary>Sends through the hub context to one connection.</summary>
public sealed class HubLiveSender(IHubContext<JobsHub> hub) : ILiveSender
{
    public Task SendAsync(string connectionId, string method, object payload, CancellationToken cancellationToken) =>
        hub.Clients.Client(connectionId).SendAsync(method, payload, cancellationToken);
}

/// <summary>The open hub connections of this gateway: their outboxes, tenants and keys (to close them when a key is revoked).</summary>
public sealed class LiveConnections(ILiveSender sender, IOptionsMonitor<GatewayOptions> options, GatewayMetrics metrics, ILoggerFactory logs)
{
    private readonly ConcurrentDictionary<string, Entry> _connections = new(StringComparer.Ordinal);
    private readonly ILogger _log = logs.CreateLogger<ConnectionOutbox>();

    private sealed record Entry(ConnectionOutbox Outbox, HubCallerContext Context, string Secret);

    public int Count => _connections.Count;

    public ConnectionOutbox Add(HubCallerContext context, string tenantId, string keyId, string secret)
    {
        var outbox = new ConnectionOutbox(context.ConnectionId, tenantId, keyId, sender, options.CurrentValue.Live, _log, metrics, context.Abort);
        _connections[context.ConnectionId] = new Entry(outbox, context, secret);
        metrics.ConnectionOpened();
        return outbox;
    }

    public ConnectionOutbox? Get(string connectionId) => _connections.TryGetValue(connectionId, out var e) ? e.Outbox : null;

    public string? SecretOf(string connectionId) => _connections.TryGetValue(connectionId, out var e) ? e.Secret : null;

    public ConnectionOutbox? Remove(string connectionId)
    {
        if (!_connections.TryRemove(connectionId, out var e)) return null;
        metrics.ConnectionClosed();
        return e.Outbox;
    }

    /// <summary>Closes the connections that authenticated with a key (it was revoked).</summary>
    public void AbortKey(string tenantId, string keyId)
    {
        foreach (var e in _connections.Values)
            if (e.Outbox.TenantId == tenantId && e.Outbox.KeyId == keyId) e.Context.Abort();
    }

    /// <summary>Closes the connections whose key is no longer valid (revoked through another gateway).</summary>
    public async Task RevalidateAsync(ApiKeyValidator validator, CancellationToken ct)
    {
        foreach (var e in _connections.Values)
        {
            if (ct.IsCancellationRequested) return;
            try
            {
                if (await validator.ValidateAsync(e.Secret) is null) e.Context.Abort();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The cluster is unreachable: keep the connection; the next round checks again.
            }
        }
    }
}
