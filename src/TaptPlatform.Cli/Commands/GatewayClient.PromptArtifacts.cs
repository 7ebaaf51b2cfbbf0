using System.Net.Http.Headers;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary>The tenant's own prompt artifacts (<c>/api/prompt-artifacts</c>).</summary>
public sealed partial class GatewayClient
{
    /// <summary>Uploads a .safetensors prompt artifact for a model as the next version of <paramref name="name"/>.</summary>
    public Task<JsonElement> UploadPromptArtifactAsync(string name, string model, string file, CancellationToken ct) =>
        SendAsync<JsonElement>(() =>
        {
            var content = new ByteArrayContent(File.ReadAllBytes(file));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            return new HttpRequestMessage(HttpMethod.Post, $"api/prompt-artifacts/{Uri.EscapeDataString(name)}?model={Uri.EscapeDataString(model)}") { Content = content };
        }, ct);

    /// <summary>The tenant's artifact versions; with a model, also the operator's artifacts of that model.</summary>
    public Task<JsonElement> ListPromptArtifactsAsync(string? model, CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Get,
            model is null ? "api/prompt-artifacts" : $"api/prompt-artifacts?model={Uri.EscapeDataString(model)}"), ct);

    /// <summary>Writes one version's file to <paramref name="destination"/>.</summary>
    public async Task DownloadPromptArtifactAsync(string name, int version, Stream destination, CancellationToken ct)
    {
        using var response = await SendRawAsync(HttpMethod.Get, $"api/prompt-artifacts/{Uri.EscapeDataString(name)}/versions/{version}/content", ct);
        await response.Content.CopyToAsync(destination, ct);
    }

    /// <summary>Deletes one version (or, with none, every version).</summary>
    public async Task DeletePromptArtifactAsync(string name, int? version, CancellationToken ct)
    {
        var path = $"api/prompt-artifacts/{Uri.EscapeDataString(name)}" + (version is { } v ? $"/versions/{v}" : "");
        using var _ = await SendRawAsync(HttpMethod.Delete, path, ct);
    }

    /// <summary>A request whose successful answer is not JSON (a file, or no content); problems become <see cref="GatewayException"/>.</summary>
    private async Task<HttpResponseMessage> SendRawAsync(HttpMethod method, string path, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(new HttpRequestMessage(method, path), HttpCompletionOption.ResponseHeadersRead, ct);
        }
        catch (HttpRequestException e)
        {
            throw new GatewayException($"cannot reach {Server}: {e.Message}");
        }
        catch (Polly.ExecutionRejectedException e)
        {
            throw new GatewayException($"{Server}: {e.Message}");
        }
        if (response.IsSuccessStatusCode) return response;
        using (response) throw await ProblemAsync(response, ct);
    }
}
