using System.Collections.Immutable;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Limits;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// A tenant's own prompt artifacts: upload (the safetensors file as the request body, checked here for its header's
/// bounds before anything is stored, then on an accelerator silo against the model), list (with <c>?model=</c> also the
/// operator's artifacts of that model, visible to every tenant), read, download and delete (one version or all; 409
/// while a prompt configuration version references it). A prompt configuration uses one with
/// <c>promptArtifact</c> and <c>promptArtifactVersion</c>.
/// </summary>
public static class PromptArtifactEndpoints
{
    public static void MapPromptArtifactEndpoints(this RouteGroupBuilder api)
    {
        var a = api.MapGroup("/prompt-artifacts").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Prompt artifacts");
        a.MapGet("/", List).WithSummary("Lists the tenant's prompt artifact versions; with ?model= also the operator's artifacts of that model.");
        a.MapPost("/{name}", Upload).Trail(TrailKinds.PromptArtifactUploaded).WithMetadata(new BodyLimitMetadata(BodyLimitKind.Upload))
            .WithSummary("Uploads a prompt artifact (the .safetensors file as the body) for ?model=; stores it as the next version of the name.");
        a.MapGet("/{name}", async (string name, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Artifacts(c, g).GetAsync(name)))
            .WithSummary("The latest version of a prompt artifact.");
        a.MapGet("/{name}/versions", async (string name, HttpContext c, IGrainFactory g) =>
        {
            var all = (await Artifacts(c, g).ListAsync()).Where(x => x.Name == name).ToImmutableArray();
            return all.IsEmpty ? throw new TaptNotFoundException($"prompt artifact '{name}' not found") : TypedResults.Ok(all);
        }).WithSummary("Every version of a prompt artifact.");
        a.MapGet("/{name}/versions/{version:int}", async (string name, int version, HttpContext c, IGrainFactory g) =>
            TypedResults.Ok(await Artifacts(c, g).GetAsync(name, version))).WithSummary("One version of a prompt artifact.");
        a.MapGet("/{name}/versions/{version:int}/content", Download).WithSummary("Downloads one version of a prompt artifact (the .safetensors file).");
        a.MapDelete("/{name}", async (string name, HttpContext c, IGrainFactory g) =>
        {
            await Artifacts(c, g).DeleteAsync(name);
            return TypedResults.NoContent();
        }).Trail(TrailKinds.PromptArtifactDeleted).WithSummary("Deletes every version of a prompt artifact (409 while a prompt configuration uses one).");
        a.MapDelete("/{name}/versions/{version:int}", async (string name, int version, HttpContext c, IGrainFactory g) =>
        {
            await Artifacts(c, g).DeleteAsync(name, version);
            return TypedResults.NoContent();
        }).Trail(TrailKinds.PromptArtifactDeleted).WithSummary("Deletes one version of a prompt artifact (409 while a prompt configuration uses it).");
    }

    private static IPromptArtifactsGrain Artifacts(HttpContext c, IGrainFactory g) => g.GetGrain<IPromptArtifactsGrain>(c.User.TenantId());

    private static async Task<Results<Ok<ImmutableArray<PromptArtifactInfo>>, ProblemHttpResult>> List(string? model, HttpContext c, IGrainFactory g)
    {
        if (model is not null && !Identifiers.IsValidName(model)) return Problems.Invalid("model: use 1-64 letters, digits, '.', '_' and '-'");
        var own = await Artifacts(c, g).ListAsync();
        if (model is null) return TypedResults.Ok(own);
        var operators = await g.GetGrain<IPromptArtifactCheckGrain>(model).ListOperatorArtifactsAsync();
        return TypedResults.Ok(operators.AddRange(own.Where(x => x.Model == model)));
    }

    private static async Task<Results<Created<PromptArtifactInfo>, ProblemHttpResult>> Upload(string name, string? model, HttpContext c, IGrainFactory g,
        ImageStaging staging, IOptionsMonitor<GatewayOptions> options, ILoggerFactory loggers)
    {
        if (!Identifiers.IsValidName(name)) return Problems.Invalid("name: use 1-64 letters, digits, '.', '_' and '-'");
        if (model is null || !Identifiers.IsValidName(model)) return Problems.Invalid("model: name the model the artifact is for, as ?model={name}");
        var max = options.CurrentValue.MaxPromptArtifactBytes;
        if (c.Request.ContentLength > max) return TooLarge(max, c.Request.ContentLength.Value);
        var tenantId = c.User.TenantId();
        var ct = c.RequestAborted;
        PromptArtifactHeader header;
        byte[] head;
        try
        {
            (header, head) = await PromptArtifactHeader.ReadAsync(c.Request.Body, ct);
        }
        catch (InvalidDataException e)
        {
            return Problems.Invalid($"not a usable prompt artifact: {e.Message}");
        }
        if (header.TotalBytes > max) return TooLarge(max, header.TotalBytes);
        var id = Guid.NewGuid().ToString("N");
        if (await staging.StageBlobAsync(tenantId, PromptArtifactStore.StagingBlobName(id), head, c.Request.Body, max, ct) is not { } staged)
            return TooLarge(max, null);
        if (staged.Length != header.TotalBytes)
        {
            await DiscardAsync(c, id, loggers);
            return Problems.Invalid($"the file is {staged.Length} bytes but its header describes {header.TotalBytes} (a truncated or padded file)");
        }
        // The grain checks it against the model, keeps it and deletes the staging blob.
        var info = await Artifacts(c, g).AddVersionAsync(name, model, new StagedPromptArtifact(id, staged.Length, staged.Sha256));
        return TypedResults.Created($"/api/prompt-artifacts/{info.Name}/versions/{info.Version}", info);
    }

    private static async Task<IResult> Download(string name, int version, HttpContext c, IGrainFactory g, PromptArtifactStore store)
    {
        var info = await Artifacts(c, g).GetAsync(name, version);   // 404 unless it is this tenant's
        if (await store.OpenReadAsync(c.User.TenantId(), info.Name, info.Version, c.RequestAborted) is not { } content)
            throw new TaptStorageUnavailableException($"the content of prompt artifact '{name}' v{version} is missing from storage");
        c.Response.Headers.ETag = $"\"{info.Sha256}\"";
        return TypedResults.Stream(content.Content, PromptArtifactStore.ContentType, $"{info.Name}-v{info.Version}.safetensors");
    }

    private static ProblemHttpResult TooLarge(long max, long? length) =>
        Problems.Result(413, ErrorCodes.PayloadTooLarge, "Payload too large",
            $"a prompt artifact has at most {max} bytes{(length is { } l ? $" ({l} sent)" : "")} (Tapt:Gateway:MaxPromptArtifactBytes)");

    private static async Task DiscardAsync(HttpContext c, string id, ILoggerFactory loggers)
    {
        try
        {
            await c.RequestServices.GetRequiredService<PromptArtifactStore>().DeleteStagedAsync(c.User.TenantId(), id);
        }
        catch (Exception e)
        {
            loggers.CreateLogger(typeof(PromptArtifactEndpoints)).LogWarning(e, "A staged prompt artifact could not be deleted");
        }
    }
}
