using System.Net.Http.Json;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary>Tenant erasure (operator key): start it, follow it, verify its signed summary.</summary>
public sealed partial class GatewayClient
{
    /// <summary>Starts the tenant's erasure (or returns the one started before): its status.</summary>
    public Task<JsonElement> EraseTenantAsync(string tenantId, CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Delete, $"api/tenants/{Uri.EscapeDataString(tenantId)}"), ct);

    /// <summary>The erasure's phase and counts, and its summary once done.</summary>
    public Task<JsonElement> GetErasureAsync(string tenantId, CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Get, $"api/tenants/{Uri.EscapeDataString(tenantId)}/erasure"), ct);

    /// <summary>Whether the gateway finds the summary signed by the platform, unaltered.</summary>
    public Task<JsonElement> VerifyErasureAsync(JsonElement summary, CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Post, "api/erasures/verify") { Content = JsonContent.Create(summary) }, ct);
}
