using System.Collections.Immutable;
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
