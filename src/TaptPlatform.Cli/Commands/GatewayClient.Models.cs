using System.Net.Http.Headers;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary>The model registry (<c>/api/models</c>).</summary>
public sealed partial class GatewayClient
{
    /// <summary>Registers a zipped model folder (operator key) under <paramref name="name"/>.</summary>
    public Task<JsonElement> RegisterModelAsync(string name, string zipFile, CancellationToken ct) =>
        SendAsync<JsonElement>(() =>
        {
            var content = new StreamContent(File.OpenRead(zipFile));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
            return new HttpRequestMessage(HttpMethod.Post, $"api/models/{Uri.EscapeDataString(name)}") { Content = content };
        }, ct);

    /// <summary>Registers a folder already in the models container (operator key).</summary>
    public Task<JsonElement> RegisterModelPrefixAsync(string name, string prefix, CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Post,
            $"api/models/{Uri.EscapeDataString(name)}?prefix={Uri.EscapeDataString(prefix)}"), ct);

    public Task<JsonElement> ListModelsAsync(CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Get, "api/models"), ct);
}
