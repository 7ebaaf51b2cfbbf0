using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// Vocabularies and prompt configurations: create (POST on the collection), new version (POST on
/// <c>/{name}/versions</c>), list, read (latest or one version) and delete (one version or all). A version an
/// unfinished job uses cannot be deleted (409).
/// </summary>
public static class CatalogEndpoints
{
    public static void MapCatalogEndpoints(this RouteGroupBuilder api)
    {
        var v = api.MapGroup("/vocabularies").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Vocabularies");
        v.MapGet("/", async (HttpContext c, IGrainFactory g) => TypedResults.Ok(await Tenant(c, g).ListVocabulariesAsync()))
            .WithSummary("Lists vocabularies with their latest version and label count.");
        v.MapPost("/", CreateVocabulary).Trail(TrailKinds.VocabularyCreated).WithSummary("Creates a vocabulary (version 1).");
        v.MapGet("/{name}", async (string name, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Tenant(c, g).GetVocabularyAsync(name)))
            .WithSummary("The latest version of a vocabulary.");
        v.MapGet("/{name}/versions", async (string name, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Tenant(c, g).ListVocabularyVersionsAsync(name)))
            .WithSummary("The version numbers of a vocabulary.");
        v.MapPost("/{name}/versions", NewVocabularyVersion).Trail(TrailKinds.VocabularyVersioned).WithSummary("Stores a new version of a vocabulary (an identical one returns the latest).");
        v.MapGet("/{name}/versions/{version:int}", async (string name, int version, HttpContext c, IGrainFactory g) =>
            TypedResults.Ok(await Tenant(c, g).GetVocabularyAsync(name, version))).WithSummary("One version of a vocabulary.");
        v.MapDelete("/{name}", async (string name, HttpContext c, IGrainFactory g) =>
        {
            await Tenant(c, g).DeleteVocabularyAsync(name);
            return TypedResults.NoContent();
        }).Trail(TrailKinds.VocabularyDeleted).WithSummary("Deletes every version of a vocabulary (409 while an unfinished job uses one).");
        v.MapDelete("/{name}/versions/{version:int}", async (string name, int version, HttpContext c, IGrainFactory g) =>
        {
            await Tenant(c, g).DeleteVocabularyAsync(name, version);
            return TypedResults.NoContent();
        }).Trail(TrailKinds.VocabularyDeleted).WithSummary("Deletes one version of a vocabulary (409 while an unfinished job uses it).");

        var p = api.MapGroup("/prompt-configurations").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Prompt configurations");
        p.MapGet("/", async (HttpContext c, IGrainFactory g) => TypedResults.Ok(await Tenant(c, g).ListPromptConfigurationsAsync()))
            .WithSummary("Lists prompt configurations (latest versions).");
        p.MapPost("/", CreatePromptConfiguration).Trail(TrailKinds.ConfigurationCreated).WithSummary("Creates a prompt configuration (version 1).");
        p.MapGet("/{name}", async (string name, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Tenant(c, g).GetPromptConfigurationAsync(name)))
            .WithSummary("The latest version of a prompt configuration.");
        p.MapGet("/{name}/versions", async (string name, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Tenant(c, g).ListPromptConfigurationVersionsAsync(name)))
            .WithSummary("The version numbers of a prompt configuration.");
        p.MapPost("/{name}/versions", NewPromptConfigurationVersion).Trail(TrailKinds.ConfigurationVersioned).WithSummary("Stores a new version of a prompt configuration.");
        p.MapGet("/{name}/versions/{version:int}", async (string name, int version, HttpContext c, IGrainFactory g) =>
            TypedResults.Ok(await Tenant(c, g).GetPromptConfigurationVersionAsync(name, version))).WithSummary("One version of a prompt configuration.");
        p.MapDelete("/{name}", async (string name, HttpContext c, IGrainFactory g) =>
        {
            await Tenant(c, g).DeletePromptConfigurationAsync(name);
            return TypedResults.NoContent();
        }).Trail(TrailKinds.ConfigurationDeleted).WithSummary("Deletes every version of a prompt configuration (409 while an unfinished job uses one).");
        p.MapDelete("/{name}/versions/{version:int}", async (string name, int version, HttpContext c, IGrainFactory g) =>
        {
            await Tenant(c, g).DeletePromptConfigurationAsync(name, version);
            return TypedResults.NoContent();
        }).Trail(TrailKinds.ConfigurationDeleted).WithSummary("Deletes one version of a prompt configuration (409 while an unfinished job uses it).");
    }

    private static ITenantGrain Tenant(HttpContext c, IGrainFactory g) => g.GetGrain<ITenantGrain>(c.User.TenantId());

    private static async Task<Results<Created<VocabularyVersion>, ProblemHttpResult>> CreateVocabulary(VocabularyRequest? body, HttpContext c, IGrainFactory g)
    {
        if (ToDefinition(body, body?.Name) is not { } definition) return InvalidVocabulary(body);
        var tenant = Tenant(c, g);
        if ((await tenant.ListVocabulariesAsync()).Any(s => s.Name == definition.Name))
            return Problems.Result(409, ErrorCodes.Conflict, "Conflict", $"vocabulary '{definition.Name}' exists: add a version with POST /api/vocabularies/{definition.Name}/versions");
        var created = await tenant.PutVocabularyAsync(definition);
        return TypedResults.Created($"/api/vocabularies/{created.Name}/versions/{created.Version}", created);
    }

    private static async Task<Results<Ok<VocabularyVersion>, Created<VocabularyVersion>, ProblemHttpResult>> NewVocabularyVersion(string name, VocabularyRequest? body, HttpContext c, IGrainFactory g)
    {
        if (body?.Name is { } n && n != name) return Problems.Invalid("the body names another vocabulary than the path");
        var tenant = Tenant(c, g);
        var latest = await tenant.GetVocabularyAsync(name);   // 404 when missing
        if (ToDefinition(body, name) is not { } definition) return InvalidVocabulary(body);
        var stored = await tenant.PutVocabularyAsync(definition);
        if (stored.Version == latest.Version) return TypedResults.Ok(stored);
        return TypedResults.Created($"/api/vocabularies/{stored.Name}/versions/{stored.Version}", stored);
    }

    private static VocabularyDefinition? ToDefinition(VocabularyRequest? body, string? name)
    {
        if (body?.Labels is null || name is null || !Identifiers.IsValidName(name)) return null;
        if (body.Labels.Count is < 2 or > VocabularyDefinition.MaxLabels || body.Labels.Any(l => l is null)) return null;
        return new VocabularyDefinition(name, body.Labels.ToImmutableArray(), body.Template ?? VocabularyDefinition.DefaultTemplate);
    }

    private static ProblemHttpResult InvalidVocabulary(VocabularyRequest? body) =>
        body is null ? Problems.Invalid("send a JSON body {\"name\", \"labels\", \"template\"}")
        : body.Name is not null && !Identifiers.IsValidName(body.Name) ? Problems.Invalid("name: use 1-64 letters, digits, '.', '_' and '-'")
        : body.Labels is null ? Problems.Invalid("labels: a list of 2 to 1000 labels is required")
        : body.Labels.Count > VocabularyDefinition.MaxLabels ? Problems.Invalid($"labels: a vocabulary has at most {VocabularyDefinition.MaxLabels} labels ({body.Labels.Count} sent)", "too_many_labels")
        : body.Labels.Count < 2 ? Problems.Invalid("labels: a vocabulary needs at least two labels")
        : Problems.Invalid("labels: null entries are not labels");

    private static async Task<Results<Created<PromptConfiguration>, ProblemHttpResult>> CreatePromptConfiguration(PromptConfigurationRequest? body, HttpContext c, IGrainFactory g)
    {
        if (ToConfiguration(body, body?.Name, out var problem) is not { } configuration) return problem!;
        var tenant = Tenant(c, g);
        if ((await tenant.ListPromptConfigurationsAsync()).Any(x => x.Name == configuration.Name))
            return Problems.Result(409, ErrorCodes.Conflict, "Conflict", $"prompt configuration '{configuration.Name}' exists: add a version with POST /api/prompt-configurations/{configuration.Name}/versions");
        var stored = await tenant.PutPromptConfigurationAsync(configuration);
        return TypedResults.Created($"/api/prompt-configurations/{stored.Name}/versions/{stored.Version}", stored);
    }

    private static async Task<Results<Ok<PromptConfiguration>, Created<PromptConfiguration>, ProblemHttpResult>> NewPromptConfigurationVersion(string name, PromptConfigurationRequest? body, HttpContext c, IGrainFactory g)
    {
        if (body?.Name is { } n && n != name) return Problems.Invalid("the body names another prompt configuration than the path");
        var tenant = Tenant(c, g);
        var latest = await tenant.GetPromptConfigurationAsync(name);
        if (ToConfiguration(body, name, out var problem) is not { } configuration) return problem!;
        var stored = await tenant.PutPromptConfigurationAsync(configuration);
        if (stored.Version == latest.Version) return TypedResults.Ok(stored);
        return TypedResults.Created($"/api/prompt-configurations/{stored.Name}/versions/{stored.Version}", stored);
    }

    private static PromptConfiguration? ToConfiguration(PromptConfigurationRequest? body, string? name, out ProblemHttpResult? problem)
    {
        problem = body is null ? Problems.Invalid("send a JSON body {\"name\", \"model\", ...}")
            : name is null || !Identifiers.IsValidName(name) ? Problems.Invalid("name: use 1-64 letters, digits, '.', '_' and '-'")
            : body.Model is null || !Identifiers.IsValidName(body.Model) ? Problems.Invalid("model: the name of a model in the cluster's catalog is required")
            : null;
        if (problem is not null) return null;
        var c = new PromptConfiguration(name!, body!.Model!, body.PromptArtifact, body.Design, body.Views, body.Steps, body.LearningRate, body.Flagging,
            PromptArtifactVersion: body.PromptArtifactVersion);
        c.Validate();   // TaptRequestException → 400 with the reason
        return c;
    }
}
