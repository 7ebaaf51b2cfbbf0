using System.Diagnostics.Metrics;

namespace TaptPlatform.Gateway.Telemetry;

/// <summary>
/// The gateway's own instruments (meter <c>TaptPlatform.Gateway</c>), scraped with the ASP.NET Core ones at
/// <c>/metrics</c>. No tag carries a tenant or job id (the per-tenant series are the silo's, on its own meters).
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "TaptPlatform.Gateway";

    private readonly Counter<long> _images;
    private readonly Counter<long> _rejectedImages;
    private readonly Counter<long> _jobs;
    private readonly Counter<long> _limited;
    private readonly Counter<long> _keysRefused;
    private readonly Counter<long> _liveSent;
    private readonly Counter<long> _coalesced;
    private readonly Counter<long> _dropped;
    private readonly UpDownCounter<long> _connections;

    public GatewayMetrics(IMeterFactory meters)
    {
        var m = meters.Create(MeterName);
        _images = m.CreateCounter<long>("tapt.gateway.images.accepted", "{image}", "Images accepted into jobs");
        _rejectedImages = m.CreateCounter<long>("tapt.gateway.images.rejected", "{image}", "Images refused at upload (format, size, limits)");
        _jobs = m.CreateCounter<long>("tapt.gateway.jobs.created", "{job}", "Jobs created");
        _limited = m.CreateCounter<long>("tapt.gateway.requests.limited", "{request}", "Requests refused with 429, by limit");
        _keysRefused = m.CreateCounter<long>("tapt.gateway.keys.refused", "{request}",
            "Tenant keys refused, by reason: malformed, bad_signature and unsigned (no grain asked), unknown (refused by the tenant grain)");
        _liveSent = m.CreateCounter<long>("tapt.gateway.live.messages", "{message}", "SignalR messages sent to live connections, by kind");
        _coalesced = m.CreateCounter<long>("tapt.gateway.live.steps_coalesced", "{event}", "Step events replaced by a later step of the same image before a slow connection read them");
        _dropped = m.CreateCounter<long>("tapt.gateway.live.dropped", "{event}", "Live events dropped for a connection whose buffer was full (it is told to resynchronise)");
        _connections = m.CreateUpDownCounter<long>("tapt.gateway.live.connections", "{connection}", "Open live connections");
    }

    public void ImagesAccepted(int n) => _images.Add(n);
    public void ImagesRejected(int n) => _rejectedImages.Add(n);
    public void JobCreated() => _jobs.Add(1);
    public void Limited(string limit) => _limited.Add(1, new KeyValuePair<string, object?>("limit", limit));
    public void KeyRefused(string reason) => _keysRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));
    public void LiveSent(string kind) => _liveSent.Add(1, new KeyValuePair<string, object?>("kind", kind));
    public void StepsCoalesced(int n) => _coalesced.Add(n);
    public void LiveDropped(int n) => _dropped.Add(n);
    public void ConnectionOpened() => _connections.Add(1);
    public void ConnectionClosed() => _connections.Add(-1);
}
