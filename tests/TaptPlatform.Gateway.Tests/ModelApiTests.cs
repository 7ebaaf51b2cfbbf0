using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Azure.Storage.Blobs;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Vision.Clip;

namespace TaptPlatform.Gateway.Tests;

/// <summary>The model registry through the API: the operator registers a zipped CLIP folder; everyone lists it.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ModelApiTests(GatewayFixture gateway)
{
    [Fact]
    public async Task The_operator_registers_a_zipped_model_folder_that_tenants_then_list_without_the_operators_details()
    {
        var name = "zipped-" + Guid.NewGuid().ToString("N")[..8];
        using var op = gateway.Operator();
        var created = await op.PostAsync($"/api/models/{name}", Zip(TestModels.TinyDirectory, top: "tiny/"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var model = await created.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(ClipCheckpoint.Sha256(Path.Combine(TestModels.TinyDirectory, "model.safetensors")), model.GetProperty("checksum").GetString());
        Assert.Equal(Directory.GetFiles(TestModels.TinyDirectory).Length, model.GetProperty("files").GetArrayLength());
        Assert.Equal("upload", model.GetProperty("source").GetString());

        // The same folder again (zipped from inside it): the same registration, and the second upload's files are not kept.
        var again = await op.PostAsync($"/api/models/{name}", Zip(TestModels.TinyDirectory, top: ""));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(model.GetProperty("registeredAt").GetString(), (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("registeredAt").GetString());
        Assert.Equal(model.GetProperty("files").GetArrayLength(), (await BlobsUnderAsync($"uploads/{name}/")).Count);

        // A tenant sees the model, not where it runs; the operator sees the silo serving it.
        var (_, tenantKey) = await gateway.CreateTenantAsync(prefix: "models");
        using var tenant = gateway.WithKey(tenantKey);
        var listed = (await tenant.GetFromJsonAsync<JsonElement>("/api/models")).EnumerateArray().Single(m => m.GetProperty("model").GetProperty("name").GetString() == name);
        Assert.Equal(JsonValueKind.Null, listed.GetProperty("silo").ValueKind);
        var forOperator = await op.GetFromJsonAsync<JsonElement>($"/api/models/{name}");
        Assert.False(string.IsNullOrEmpty(forOperator.GetProperty("silo").GetString()));

        // Only the operator registers and forgets models.
        Assert.Equal(HttpStatusCode.Forbidden, (await tenant.PostAsync($"/api/models/{name}-mine", Zip(TestModels.TinyDirectory, top: ""))).StatusCode);
        using var anonymous = gateway.Anonymous();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/models")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync($"/api/models/{name}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await tenant.GetAsync($"/api/models/{name}")).StatusCode);
    }

    [Theory]
    [InlineData("not-a-zip", "not a zip file")]
    [InlineData("nested", "nested folders")]
    [InlineData("no-config", "lacks config.json")]
    [InlineData("empty-body", "send the model folder as a zip")]
    public async Task A_model_upload_that_is_not_a_model_folder_is_refused_with_the_reason_and_leaves_no_files(string kind, string reason)
    {
        var name = $"{kind}-{Guid.NewGuid():N}"[..30];
        HttpContent body = kind switch
        {
            "not-a-zip" => new ByteArrayContent("plain text, not a zip"u8.ToArray()),
            "nested" => Zip(TestModels.TinyDirectory, top: "", extra: "weights/model.safetensors"),
            "no-config" => Zip(TestModels.TinyDirectory, top: "", skip: "config.json"),
            _ => new ByteArrayContent([]),
        };
        body.Headers.ContentType ??= new MediaTypeHeaderValue("application/zip");
        using var op = gateway.Operator();
        var response = await op.PostAsync($"/api/models/{name}", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(reason, await response.Content.ReadAsStringAsync());
        Assert.Empty(await BlobsUnderAsync($"uploads/{name}/"));
        Assert.Equal(HttpStatusCode.NotFound, (await op.GetAsync($"/api/models/{name}")).StatusCode);
    }

    [Fact]
    public async Task Tapt_models_register_uploads_a_local_folder_and_list_shows_it_and_bad_arguments_are_one_line_errors()
    {
        var name = "cli-" + Guid.NewGuid().ToString("N")[..8];
        using var op = new TaptPlatform.Cli.Commands.GatewayClient(gateway.BaseAddress.ToString(), GatewayFixture.OperatorKey);
        var registered = new StringWriter();
        await TaptPlatform.Cli.Commands.ModelsCommand.RegisterAsync(op, name, TestModels.TinyDirectory, null, registered, CancellationToken.None);
        var checksum = ClipCheckpoint.Sha256(Path.Combine(TestModels.TinyDirectory, "model.safetensors"));
        Assert.StartsWith($"{name}: ", registered.ToString());
        Assert.Contains(checksum, registered.ToString());

        var (_, tenantKey) = await gateway.CreateTenantAsync(prefix: "cli-models");
        using var tenant = new TaptPlatform.Cli.Commands.GatewayClient(gateway.BaseAddress.ToString(), tenantKey);
        var listed = new StringWriter();
        await TaptPlatform.Cli.Commands.ModelsCommand.ListAsync(tenant, listed, CancellationToken.None);
        var line = listed.ToString().Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal));
        Assert.DoesNotContain("served by", line);

        await Assert.ThrowsAsync<TaptPlatform.Cli.CliException>(() =>
            TaptPlatform.Cli.Commands.ModelsCommand.RegisterAsync(op, name, TestModels.TinyDirectory, "somewhere", new StringWriter(), CancellationToken.None));
        var refused = await Assert.ThrowsAsync<TaptPlatform.Cli.Commands.GatewayException>(() =>
            TaptPlatform.Cli.Commands.ModelsCommand.RegisterAsync(tenant, name + "-x", TestModels.TinyDirectory, null, new StringWriter(), CancellationToken.None));
        Assert.Contains("403", refused.Message);
    }

    private static ByteArrayContent Zip(string directory, string top, string? skip = null, string? extra = null)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            if (top.Length > 0) zip.CreateEntry(top);
            foreach (var file in Directory.GetFiles(directory).Where(f => Path.GetFileName(f) != skip))
                zip.CreateEntryFromFile(file, top + Path.GetFileName(file));
            if (extra is not null) zip.CreateEntryFromFile(Path.Combine(directory, "model.safetensors"), extra);
        }
        var content = new ByteArrayContent(buffer.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        return content;
    }

    private async Task<List<string>> BlobsUnderAsync(string prefix)
    {
        var container = new BlobServiceClient(gateway.Storage.ConnectionString).GetBlobContainerClient("tapt-models");
        var names = new List<string>();
        if (!await container.ExistsAsync()) return names;
        await foreach (var b in container.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, prefix, CancellationToken.None)) names.Add(b.Name);
        return names;
    }
}
