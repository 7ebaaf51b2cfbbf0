using System.Collections.Immutable;
using System.IO.Compression;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Limits;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// The model registry. Operators register a Hugging Face CLIP folder under a name, either as a zip in the body (kept in
/// the models container under <c>uploads/{name}/{id}</c>) or by naming a <c>?prefix=</c> they copied it to; an
/// accelerator silo verifies it before it is recorded. Everyone signed in lists models (the name a prompt configuration
/// uses, resolution, size, checksum); the operator also sees which silo serves each and whether it is loaded there.
/// </summary>
public static class ModelEndpoints
{
    public static void MapModelEndpoints(this RouteGroupBuilder api)
    {
        // Tenants and the operator read the registry ("Shared"); only the operator changes it ("Operator").
        var m = api.MapGroup("/models").RequireAuthorization().WithTags("Models");
        m.MapGet("/", List).WithTags("Shared").WithSummary("Lists registered models; the operator also sees where each is served and loaded.");
        m.MapGet("/{name}", Get).WithTags("Shared").WithSummary("One registered model.");
        m.MapPost("/{name}", Register).RequireAuthorization(TaptAuth.OperatorPolicy).WithTags("Operator").WithMetadata(new BodyLimitMetadata(BodyLimitKind.Model))
            .WithSummary("Registers a model: a zip of its Hugging Face CLIP folder as the body, or ?prefix= naming a folder already in the models container.");
        m.MapDelete("/{name}", async (string name, IGrainFactory g) =>
        {
            if (!Identifiers.IsValidName(name)) throw new TaptNotFoundException($"model '{name}' is not registered");
            await Registry(g).RemoveAsync(name);
            return TypedResults.NoContent();
        }).RequireAuthorization(TaptAuth.OperatorPolicy).WithTags("Operator").WithSummary("Forgets a registered model (its files stay in storage).");
    }

    private static IModelRegistryGrain Registry(IGrainFactory g) => g.GetGrain<IModelRegistryGrain>(IModelRegistryGrain.Key);

    private static async Task<Ok<ImmutableArray<ModelListing>>> List(HttpContext c, IGrainFactory g)
    {
        var models = await Registry(g).ListAsync();
        var listings = await Task.WhenAll(models.Select(model => Listing(model, c, g)));
        return TypedResults.Ok(listings.ToImmutableArray());
    }

    private static async Task<Results<Ok<ModelListing>, ProblemHttpResult>> Get(string name, HttpContext c, IGrainFactory g)
    {
        var model = Identifiers.IsValidName(name) ? await Registry(g).GetAsync(name) : null;
        return model is null ? Problems.NotFound($"model '{name}' is not registered") : TypedResults.Ok(await Listing(model, c, g));
    }

    /// <summary>The model, with its serving silo for the operator (asking the model grain activates it; tenants never do).</summary>
    private static async Task<ModelListing> Listing(RegisteredModel model, HttpContext c, IGrainFactory g)
    {
        if (!c.User.IsInRole(TaptAuth.OperatorRole)) return new ModelListing(model, null, false);
        var host = await g.GetGrain<IModelGrain>(model.Name).DescribeAsync();
        return new ModelListing(model, host.Silo, host.Loaded);
    }

    private static async Task<Results<Created<RegisteredModel>, Ok<RegisteredModel>, ProblemHttpResult>> Register(string name, string? prefix, HttpContext c,
        IGrainFactory g, ModelStore store, IOptionsMonitor<GatewayOptions> options, ILoggerFactory loggers)
    {
        if (!Identifiers.IsValidName(name)) return Problems.Invalid("name: use 1-64 letters, digits, '.', '_' and '-'");
        var registry = Registry(g);
        var existing = await registry.GetAsync(name);
        if (prefix is not null)
        {
            var registered = await registry.RegisterAsync(name, ModelStore.RequirePrefix(prefix), "blob");
            return existing is null ? TypedResults.Created($"/api/models/{name}", registered) : TypedResults.Ok(registered);
        }
        if (c.Request.ContentLength is null or 0 && !c.Request.Headers.TransferEncoding.Any())
            return Problems.Invalid("send the model folder as a zip in the body (Content-Type: application/zip), or name a folder in the models container with ?prefix=");
        var uploaded = $"uploads/{name}/{Guid.NewGuid():N}";
        try
        {
            await ModelZip.UploadAsync(c.Request.Body, store, uploaded, options.CurrentValue.MaxModelBytes, c.RequestAborted);
            var registered = await registry.RegisterAsync(name, uploaded, "upload");
            if (registered.Prefix != uploaded) await Discard(store, uploaded, loggers);   // the same content was registered before
            return existing is null ? TypedResults.Created($"/api/models/{name}", registered) : TypedResults.Ok(registered);
        }
        catch
        {
            await Discard(store, uploaded, loggers);
            throw;
        }
    }

    private static async Task Discard(ModelStore store, string prefix, ILoggerFactory loggers)
    {
        try
        {
            await store.DeletePrefixAsync(prefix, CancellationToken.None);
        }
        catch (Exception e)
        {
            loggers.CreateLogger(typeof(ModelEndpoints)).LogWarning(e, "Uploaded model files under {Prefix} could not be deleted", prefix);
        }
    }
}

/// <summary>
/// A model folder sent as a zip: spooled to a temporary file (a zip is read from its end), its entries checked (flat
/// file names, optionally under one top folder; a bounded count; declared and actual sizes within the limit, so a zip
/// bomb stops at the limit) and each stored as a blob under the prefix.
/// </summary>
internal static class ModelZip
{
    public static async Task UploadAsync(Stream body, ModelStore store, string prefix, long maxBytes, CancellationToken ct)
    {
        var spool = Path.Combine(Path.GetTempPath(), $"tapt-model-upload-{Guid.NewGuid():N}.zip");
        try
        {
            await using (var file = new FileStream(spool, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                await CopyLimitedAsync(body, file, maxBytes, "the zip", ct);
            ZipArchive zip;
            try
            {
                zip = new ZipArchive(File.OpenRead(spool), ZipArchiveMode.Read);
            }
            catch (InvalidDataException)
            {
                throw new TaptRequestException("the body is not a zip file");
            }
            using (zip)
            {
                var files = Entries(zip);
                if (files.Sum(f => f.Entry.Length) > maxBytes) throw new TaptRequestException($"the zip's files hold more than {maxBytes} bytes (Tapt:Gateway:MaxModelBytes)");
                long total = 0;
                foreach (var (entry, fileName) in files)
                {
                    await using var content = entry.Open();
                    var spooledEntry = spool + "." + fileName;
                    await using (var target = new FileStream(spooledEntry, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose | FileOptions.Asynchronous))
                    {
                        total += await CopyLimitedAsync(content, target, maxBytes - total, $"'{fileName}'", ct);
                        target.Position = 0;
                        await store.UploadAsync(prefix, fileName, target, ct);
                    }
                }
            }
        }
        finally
        {
            File.Delete(spool);
        }
    }

    private static List<(ZipArchiveEntry Entry, string Name)> Entries(ZipArchive zip)
    {
        var entries = zip.Entries.Where(e => !e.FullName.EndsWith('/')).ToList();
        if (entries.Count == 0) throw new TaptRequestException("the zip holds no files");
        if (entries.Count > ModelStore.MaxFiles) throw new TaptRequestException($"the zip holds {entries.Count} files; a model folder has at most {ModelStore.MaxFiles}");
        // A folder zipped with its name ("clip/config.json", …) or from inside it ("config.json", …).
        var top = entries.Select(e => e.FullName.Split('/')).Where(p => p.Length == 2).Select(p => p[0]).Distinct().ToList();
        var root = top.Count == 1 && entries.All(e => e.FullName.StartsWith(top[0] + "/", StringComparison.Ordinal)) ? top[0] + "/" : "";
        var files = new List<(ZipArchiveEntry, string)>(entries.Count);
        foreach (var e in entries)
        {
            var name = e.FullName[root.Length..];
            if (!ModelStore.IsFileName(name)) throw new TaptRequestException($"'{e.FullName}' is not a file a model folder holds (nested folders and odd names are refused)");
            files.Add((e, name));
        }
        if (files.Select(f => f.Item2).Distinct(StringComparer.Ordinal).Count() != files.Count) throw new TaptRequestException("the zip names a file twice");
        return files;
    }

    /// <summary>Copies at most <paramref name="limit"/> bytes; <see cref="TaptRequestException"/> past it. Returns the bytes copied.</summary>
    private static async Task<long> CopyLimitedAsync(Stream source, Stream target, long limit, string what, CancellationToken ct)
    {
        var buffer = new byte[1 << 16];
        long copied = 0;
        int n;
        while ((n = await source.ReadAsync(buffer, ct)) > 0)
        {
            copied += n;
            if (copied > limit) throw new TaptRequestException($"{what} is larger than the {limit} bytes a model may still hold (Tapt:Gateway:MaxModelBytes)");
            await target.WriteAsync(buffer.AsMemory(0, n), ct);
        }
        return copied;
    }
}
