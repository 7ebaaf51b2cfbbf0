using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

[Collection(GatewayCollection.Name)]
public sealed class SecurityTests(GatewayFixture gateway)
{
    /// <summary>Every API endpoint, with the status another tenant's key gets (on Alice's things) and a body.</summary>
    private static readonly (string Method, string Route, HttpStatusCode Foreign, string? Body)[] Endpoints =
    [
        ("POST", "/api/tenants", HttpStatusCode.Forbidden, """{"id":"should-not-exist"}"""),
        ("GET", "/api/tenants/{tenantId}/keys", HttpStatusCode.Forbidden, null),
        ("POST", "/api/tenants/{tenantId}/keys", HttpStatusCode.Forbidden, """{"name":"x"}"""),
        ("DELETE", "/api/tenants/{tenantId}/keys/{keyId}", HttpStatusCode.Forbidden, null),
        ("POST", "/api/tenants/{tenantId}/retention/sweep", HttpStatusCode.Forbidden, null),
        ("DELETE", "/api/tenants/{tenantId}", HttpStatusCode.Forbidden, null),
        ("GET", "/api/tenants/{tenantId}/erasure", HttpStatusCode.Forbidden, null),
        ("POST", "/api/erasures/verify", HttpStatusCode.Forbidden, """{"tenantId":"x"}"""),
        ("GET", "/api/retention", HttpStatusCode.OK, null),
        ("PUT", "/api/retention", HttpStatusCode.OK, """{"inputs":"7.00:00:00"}"""),
        ("GET", "/api/keys", HttpStatusCode.OK, null),
        ("POST", "/api/keys", HttpStatusCode.Created, """{"name":"bobs"}"""),
        ("POST", "/api/keys/{keyId}/rotate", HttpStatusCode.NotFound, null),
        ("DELETE", "/api/keys/{keyId}", HttpStatusCode.NotFound, null),
        ("GET", "/api/usage", HttpStatusCode.OK, null),
        ("GET", "/api/vocabularies", HttpStatusCode.OK, null),
        ("POST", "/api/vocabularies", HttpStatusCode.Created, """{"name":"bobs-own","labels":["a","b"]}"""),
        ("GET", "/api/vocabularies/{name}", HttpStatusCode.NotFound, null),
        ("GET", "/api/vocabularies/{name}/versions", HttpStatusCode.NotFound, null),
        ("POST", "/api/vocabularies/{name}/versions", HttpStatusCode.NotFound, """{"labels":["a","b"]}"""),
        ("GET", "/api/vocabularies/{name}/versions/{version}", HttpStatusCode.NotFound, null),
        ("DELETE", "/api/vocabularies/{name}", HttpStatusCode.NotFound, null),
        ("DELETE", "/api/vocabularies/{name}/versions/{version}", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-configurations", HttpStatusCode.OK, null),
        ("POST", "/api/prompt-configurations", HttpStatusCode.Created, """{"name":"bobs-own","model":"tiny"}"""),
        ("GET", "/api/prompt-configurations/{name}", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-configurations/{name}/versions", HttpStatusCode.NotFound, null),
        ("POST", "/api/prompt-configurations/{name}/versions", HttpStatusCode.NotFound, """{"model":"tiny"}"""),
        ("GET", "/api/prompt-configurations/{name}/versions/{version}", HttpStatusCode.NotFound, null),
        ("DELETE", "/api/prompt-configurations/{name}", HttpStatusCode.NotFound, null),
        ("DELETE", "/api/prompt-configurations/{name}/versions/{version}", HttpStatusCode.NotFound, null),
        ("GET", "/api/jobs", HttpStatusCode.OK, null),
        ("POST", "/api/jobs", HttpStatusCode.NotFound, """{"vocabulary":"{name}","promptConfiguration":"{name}"}"""),
        ("GET", "/api/jobs/{jobId}", HttpStatusCode.NotFound, null),
        ("POST", "/api/jobs/{jobId}/images", HttpStatusCode.NotFound, "multipart"),
        ("POST", "/api/jobs/{jobId}/start", HttpStatusCode.NotFound, null),
        ("POST", "/api/jobs/{jobId}/cancel", HttpStatusCode.NotFound, null),
        ("GET", "/api/jobs/{jobId}/results", HttpStatusCode.NotFound, null),
        ("GET", "/api/jobs/{jobId}/results/{index}", HttpStatusCode.NotFound, null),
        ("GET", "/api/jobs/{jobId}/images/{index}", HttpStatusCode.NotFound, null),
        ("GET", "/api/jobs/{jobId}/export", HttpStatusCode.NotFound, null),
        ("GET", "/api/jobs/{jobId}/artifacts", HttpStatusCode.NotFound, null),
        ("GET", "/api/audit", HttpStatusCode.OK, null),
        ("GET", "/api/audit/{jobId}/{index}", HttpStatusCode.NotFound, null),
        ("GET", "/api/audit/{jobId}/{index}/download", HttpStatusCode.NotFound, null),
        ("GET", "/api/audit/{jobId}/{index}/reviews", HttpStatusCode.NotFound, null),
        ("POST", "/api/audit/{jobId}/{index}/reviews", HttpStatusCode.NotFound, """{"verdict":"false-alarm","note":"bob was here"}"""),
        ("GET", "/api/audit/trends", HttpStatusCode.OK, null),
        ("GET", "/api/audit/bundle", HttpStatusCode.OK, null),
        ("GET", "/api/trail", HttpStatusCode.OK, null),
        ("GET", "/api/trail/export", HttpStatusCode.OK, null),
        ("GET", "/api/evaluations", HttpStatusCode.OK, null),
        ("POST", "/api/evaluations", HttpStatusCode.NotFound, """{"vocabulary":"{name}","promptConfiguration":"{name}","attack":"pgd","epsilons":[0.01]}"""),
        ("POST", "/api/evaluations/{jobId}/images", HttpStatusCode.NotFound, "multipart"),
        ("POST", "/api/evaluations/{jobId}/start", HttpStatusCode.NotFound, null),
        ("POST", "/api/evaluations/{jobId}/cancel", HttpStatusCode.NotFound, null),
        ("GET", "/api/evaluations/{jobId}", HttpStatusCode.NotFound, null),
        ("GET", "/api/evaluations/{jobId}/report", HttpStatusCode.NotFound, null),
        ("GET", "/api/evaluations/{jobId}/report/download", HttpStatusCode.NotFound, null),
        ("GET", "/api/evaluations/{jobId}/outcomes", HttpStatusCode.NotFound, null),
        ("GET", "/api/evaluations/{jobId}/artifacts", HttpStatusCode.NotFound, null),
        ("GET", "/api/evaluations/{jobId}/artifacts/{**path}", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-artifacts", HttpStatusCode.OK, null),
        ("POST", "/api/prompt-artifacts/{name}", HttpStatusCode.BadRequest, """{"not":"an artifact"}"""),
        ("GET", "/api/prompt-artifacts/{name}", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-artifacts/{name}/versions", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-artifacts/{name}/versions/{version}", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-artifacts/{name}/versions/{version}/content", HttpStatusCode.NotFound, null),
        ("DELETE", "/api/prompt-artifacts/{name}", HttpStatusCode.NotFound, null),
        ("DELETE", "/api/prompt-artifacts/{name}/versions/{version}", HttpStatusCode.NotFound, null),
        ("GET", "/api/models", HttpStatusCode.OK, null),
        ("GET", "/api/models/{name}", HttpStatusCode.NotFound, null),
        ("POST", "/api/models/{name}", HttpStatusCode.Forbidden, null),
        ("DELETE", "/api/models/{name}", HttpStatusCode.Forbidden, null),
        ("GET", "/api/prompt-trainings", HttpStatusCode.OK, null),
        ("POST", "/api/prompt-trainings", HttpStatusCode.NotFound, """{"vocabulary":"{name}","model":"tiny","artifactName":"x"}"""),
        ("POST", "/api/prompt-trainings/{jobId}/images", HttpStatusCode.NotFound, "multipart"),
        ("POST", "/api/prompt-trainings/{jobId}/start", HttpStatusCode.NotFound, null),
        ("POST", "/api/prompt-trainings/{jobId}/cancel", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-trainings/{jobId}", HttpStatusCode.NotFound, null),
        ("GET", "/api/prompt-trainings/{jobId}/report", HttpStatusCode.NotFound, null),
        ("POST", "/api/prompt-trainings/{jobId}/prompt-configuration", HttpStatusCode.NotFound, null),
    ];

    [Fact]
    public async Task The_endpoint_table_of_these_tests_covers_every_api_endpoint()
    {
        var routes = gateway.Factory.Services.GetServices<EndpointDataSource>().SelectMany(s => s.Endpoints).OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/api", StringComparison.Ordinal) == true && e.Metadata.GetMetadata<HttpMethodMetadata>() is not null)
            .SelectMany(e => e.Metadata.GetMetadata<HttpMethodMetadata>()!.HttpMethods.Select(m => (m, Normalize(e.RoutePattern.RawText!))))
            .ToHashSet();
        var tested = Endpoints.Select(e => (e.Method, e.Route)).ToHashSet();
        Assert.Empty(routes.Except(tested));
        Assert.Empty(tested.Except(routes));
        await Task.CompletedTask;

        static string Normalize(string route) => System.Text.RegularExpressions.Regex.Replace(route.TrimEnd('/'), "{([a-zA-Z]+)(:[a-z]+)?}", "{$1}");
    }

    [Fact]
    public async Task Every_endpoint_answers_a_missing_a_malformed_and_a_revoked_key_with_the_same_401()
    {
        var alice = await AliceAsync();
        using var anonymous = gateway.Anonymous();
        using var malformed = gateway.WithKey("tapt.not-a-key");
        using var forged = gateway.WithKey(alice.RevokedKey[..^4] + "AAAA");
        using var revoked = gateway.WithKey(alice.RevokedKey);
        var reference = await ProblemOf(await Send(anonymous, "GET", "/api/jobs", null, alice));
        foreach (var (method, route, _, body) in Endpoints)
        {
            foreach (var client in new[] { anonymous, malformed, forged, revoked })
            {
                var response = await Send(client, method, route, body, alice);
                var problem = await ProblemOf(response);
                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{method} {route}: {(int)response.StatusCode} {problem}");
                Assert.Equal(reference.GetProperty("detail").GetString(), problem.GetProperty("detail").GetString());
                Assert.Equal("unauthenticated", problem.GetProperty("code").GetString());
                Assert.DoesNotContain(alice.TenantId, problem.GetRawText());
                Assert.DoesNotContain(alice.JobId, problem.GetRawText());
            }
        }
    }

    [Fact]
    public async Task Another_tenants_key_gets_forbidden_or_not_found_exactly_as_for_missing_things_and_changes_nothing()
    {
        var alice = await AliceAsync();
        var (bobId, _, bob) = await gateway.TenantWithSetupAsync("bob");
        using var bobHttp = bob;
        var missingJob = Identifiers.NewJobId();
        foreach (var (method, route, foreign, body) in Endpoints)
        {
            var response = await Send(bob, method, route, body, alice);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == foreign, $"{method} {route}: expected {(int)foreign}, got {(int)response.StatusCode} {text}");
            if (foreign == HttpStatusCode.NotFound)
            {
                // The same answer as for a job (or name) that exists nowhere.
                var missing = await Send(bob, method, route, body, alice with { JobId = missingJob, Name = "missing-name", KeyId = "000000000000" });
                Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
                var a = JsonDocument.Parse(text).RootElement;
                var b = JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement;
                Assert.Equal(b.GetProperty("code").GetString(), a.GetProperty("code").GetString());
                Assert.Equal(b.GetProperty("detail").GetString()!.Replace(missingJob, "J").Replace("missing-name", "N").Replace("000000000000", "K"),
                    a.GetProperty("detail").GetString()!.Replace(alice.JobId, "J").Replace("alice-only", "N").Replace(alice.KeyId, "K"));
            }
            Assert.DoesNotContain(alice.TenantId, text);
            if (!route.Contains("{jobId}", StringComparison.Ordinal)) Assert.DoesNotContain(alice.JobId, text);
        }

        // Alice's things are untouched and still hers.
        var job = await alice.Http.GetFromJsonAsync<JsonElement>($"/api/jobs/{alice.JobId}");
        Assert.Equal("completed", job.GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.OK, (await alice.Http.GetAsync("/api/vocabularies/alice-only")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await alice.Http.GetAsync("/api/prompt-configurations/alice-only")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await alice.Http.GetAsync("/api/prompt-artifacts/alice-only/versions/1/content")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await alice.Http.GetAsync("/api/jobs")).StatusCode);   // Alice's main key still works
        Assert.DoesNotContain(bobId, await alice.Http.GetStringAsync("/api/jobs"));

        // The operator key is not a tenant key.
        using var op = gateway.Operator();
        Assert.Equal(HttpStatusCode.Forbidden, (await op.GetAsync("/api/jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await op.GetAsync($"/api/jobs/{alice.JobId}")).StatusCode);
    }

    [Fact]
    public async Task The_hub_refuses_missing_and_revoked_keys_and_another_tenants_jobs_without_telling_them_apart_from_missing_ones()
    {
        var alice = await AliceAsync();
        var hub = new Uri(gateway.BaseAddress, "/hubs/jobs");

        foreach (var key in new string?[] { null, "tapt.not-a-key", alice.RevokedKey })
        {
            await using var c = new HubConnectionBuilder().WithUrl(hub, o => { if (key is not null) o.Headers["X-Api-Key"] = key; }).Build();
            var e = await Assert.ThrowsAnyAsync<HttpRequestException>(() => c.StartAsync());
            Assert.Equal(HttpStatusCode.Unauthorized, e.StatusCode);
        }
        // Browsers' access_token is accepted on the hub only, never on the API.
        using (var anonymous = gateway.Anonymous())
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/api/jobs?access_token={Uri.EscapeDataString(alice.Key)}")).StatusCode);

        var (_, bobKey, bob) = await gateway.TenantWithSetupAsync("bob");
        bob.Dispose();
        await using var bobs = new HubConnectionBuilder().WithUrl(hub, o => o.Headers["X-Api-Key"] = bobKey).Build();
        await bobs.StartAsync();
        var foreign = await Assert.ThrowsAsync<HubException>(() => bobs.InvokeAsync<JsonElement>("Subscribe", alice.JobId));
        var missingJob = Identifiers.NewJobId();
        var missing = await Assert.ThrowsAsync<HubException>(() => bobs.InvokeAsync<JsonElement>("Subscribe", missingJob));
        var malformed = await Assert.ThrowsAsync<HubException>(() => bobs.InvokeAsync<JsonElement>("Subscribe", "../../etc"));
        Assert.Equal(missing.Message.Replace(missingJob, "J"), foreign.Message.Replace(alice.JobId, "J"));
        Assert.Contains("not found", malformed.Message);
        await bobs.InvokeAsync("Unsubscribe", alice.JobId);   // harmless
        Assert.Equal(HubConnectionState.Connected, bobs.State);

        // A key revoked while connected: the connection is closed and its next call refused.
        var (_, carolKey, carol) = await gateway.TenantWithSetupAsync("carol");
        var keyId = (await carol.GetFromJsonAsync<JsonElement>("/api/keys"))[0].GetProperty("keyId").GetString();
        var second = (await (await carol.PostAsJsonAsync("/api/keys", new { name = "admin" })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("secret").GetString()!;
        await using var carols = new HubConnectionBuilder().WithUrl(hub, o => o.Headers["X-Api-Key"] = carolKey).Build();
        var closed = new TaskCompletionSource();
        carols.Closed += _ => { closed.TrySetResult(); return Task.CompletedTask; };
        await carols.StartAsync();
        using (var admin = gateway.WithKey(second)) Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/keys/{keyId}")).StatusCode);
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        carol.Dispose();
    }

    [Fact]
    public async Task Malformed_json_wrong_types_and_wrong_media_types_get_clear_400_and_415_problems()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("json");
        using var _ = http;
        var truncated = await http.PostAsync("/api/vocabularies", new StringContent("""{"name": "x", "labels": [""", Encoding.UTF8, "application/json"));
        await CatalogAndKeyTests.AssertProblem(truncated, HttpStatusCode.BadRequest, "malformed_request", "JSON");
        var wrongType = await http.PostAsync("/api/vocabularies", new StringContent("""{"name": "x", "labels": 5}""", Encoding.UTF8, "application/json"));
        await CatalogAndKeyTests.AssertProblem(wrongType, HttpStatusCode.BadRequest, "malformed_request", "labels");
        var notJson = await http.PostAsync("/api/jobs", new StringContent("vocabulary=fashion", Encoding.UTF8, "text/plain"));
        await CatalogAndKeyTests.AssertProblem(notJson, HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        var deep = await http.PostAsync("/api/vocabularies", new StringContent(new string('[', 5000) + new string(']', 5000), Encoding.UTF8, "application/json"));
        await CatalogAndKeyTests.AssertProblem(deep, HttpStatusCode.BadRequest, "malformed_request");
        var empty = await http.PostAsync("/api/jobs", new StringContent("", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        var badName = await http.PostAsJsonAsync("/api/vocabularies", new { name = "../etc/passwd", labels = new[] { "a", "b" } });
        await CatalogAndKeyTests.AssertProblem(badName, HttpStatusCode.BadRequest, "invalid_request", "name");
        await CatalogAndKeyTests.AssertProblem(await http.GetAsync("/api/no-such-thing"), HttpStatusCode.NotFound, "not_found");
        await CatalogAndKeyTests.AssertProblem(await http.GetAsync("/api/jobs/..%2F..%2Fsecrets"), HttpStatusCode.NotFound, "not_found");
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task Oversize_bodies_uploads_and_images_get_413_and_the_gateway_stays_healthy()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("big");
        using var _ = http;
        // A JSON body above the 1 MiB limit of JSON endpoints.
        var huge = await http.PostAsync("/api/vocabularies", new StringContent("{\"name\":\"x\",\"labels\":[\"" + new string('a', 1_200_000) + "\"]}", Encoding.UTF8, "application/json"));
        await CatalogAndKeyTests.AssertProblem(huge, HttpStatusCode.RequestEntityTooLarge, "payload_too_large");

        var jobId = await GatewayFixture.CreateJobAsync(http);
        // One image above the 2 MiB image limit.
        var bigImage = await http.PostAsync($"/api/jobs/{jobId}/images", GatewayFixture.Images([("big.png", new byte[2 * 1024 * 1024 + 1])]));
        await CatalogAndKeyTests.AssertProblem(bigImage, HttpStatusCode.RequestEntityTooLarge, "image_too_large", "big.png");
        // A whole upload above the 6 MiB upload limit, declared…
        var declared = new HttpRequestMessage(HttpMethod.Post, $"/api/jobs/{jobId}/images")
        {
            Content = GatewayFixture.Images(Enumerable.Range(0, 4).Select(i => ($"{i}.png", new byte[1_900_000]))),
        };
        declared.Headers.ExpectContinue = true;   // the 413 comes before the body is sent
        await CatalogAndKeyTests.AssertProblem(await http.SendAsync(declared), HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        // …and streamed without a length: refused once the limit is crossed (the client may see the 413, or the
        // connection closed under its still-running upload).
        var streamed = new MultipartFormDataContent();
        for (var i = 0; i < 4; i++) streamed.Add(new StreamContent(new MemoryStream(new byte[1_900_000])), "images", $"{i}.png");
        try
        {
            var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, $"/api/jobs/{jobId}/images") { Content = new ChunkedContent(streamed) });
            await CatalogAndKeyTests.AssertProblem(response, HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        }
        catch (HttpRequestException e) when (e.InnerException is IOException)
        {
        }

        // Nothing of that reached the job.
        Assert.Equal(0, (await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}")).GetProperty("counts").GetProperty("total").GetInt32());
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task Hostile_images_are_refused_with_their_reasons_valid_ones_accepted_and_the_job_still_runs()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("hostile");
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http);
        var png = TestModels.FashionPng(1);
        var bombHeader = (byte[])png.Clone();
        // Claim a 100000×100000 image in the IHDR (decompression bomb) — the probe refuses it before decoding.
        bombHeader[16] = 0; bombHeader[17] = 1; bombHeader[18] = 0x86; bombHeader[19] = 0xA0;
        bombHeader[20] = 0; bombHeader[21] = 1; bombHeader[22] = 0x86; bombHeader[23] = 0xA0;
        var hostile = new (string, byte[])[]
        {
            ("zero.png", []),
            ("truncated.png", png[..(png.Length / 2)]),
            ("not-an-image.png", Encoding.UTF8.GetBytes("<script>alert(1)</script>")),
            ("bomb.png", bombHeader),
        };
        var mixedContent = GatewayFixture.Images(hostile.Prepend(("good.png", png)));
        // A valid image whose name (RFC 5987 filename*) tries a path and a control character.
        var sneaky = new ByteArrayContent(png);
        sneaky.Headers.TryAddWithoutValidation("Content-Disposition", "form-data; name=\"images\"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd%01.png");
        mixedContent.Add(sneaky);
        var mixed = await http.PostAsync($"/api/jobs/{jobId}/images", mixedContent);
        Assert.Equal(HttpStatusCode.OK, mixed.StatusCode);
        var receipt = await mixed.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(2, receipt.GetProperty("accepted").GetArrayLength());   // good.png and the valid PNG with a hostile name
        var rejected = receipt.GetProperty("rejected").EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!, r => r.GetProperty("reason").GetString()!);
        Assert.Equal(["bomb.png", "not-an-image.png", "truncated.png", "zero.png"], rejected.Keys.Order(StringComparer.Ordinal));
        Assert.All(rejected.Values, reason => Assert.False(string.IsNullOrWhiteSpace(reason)));
        var names = receipt.GetProperty("accepted").EnumerateArray().Select(a => a.GetProperty("name").GetString()).ToList();
        Assert.Contains("../../etc/passwd.png", names);   // control characters are dropped; the name is only a label
        Assert.DoesNotContain(names, n => n!.Any(char.IsControl));

        // Only hostile images: 422 with every reason.
        var onlyBad = await http.PostAsync($"/api/jobs/{jobId}/images", GatewayFixture.Images(hostile.Take(3)));
        var problem = await CatalogAndKeyTests.AssertProblem(onlyBad, HttpStatusCode.UnprocessableEntity, "images_rejected");
        Assert.Equal(3, problem.GetProperty("rejected").GetArrayLength());
        // No file parts at all.
        var none = await http.PostAsync($"/api/jobs/{jobId}/images", new MultipartFormDataContent { { new StringContent("x"), "field" } });
        await CatalogAndKeyTests.AssertProblem(none, HttpStatusCode.BadRequest, "no_images");
        var json = await http.PostAsJsonAsync($"/api/jobs/{jobId}/images", new { });
        await CatalogAndKeyTests.AssertProblem(json, HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");

        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        var done = await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(1));
        Assert.Equal(2, done.GetProperty("counts").GetProperty("succeeded").GetInt32());
        // A started job takes no more images.
        var late = await http.PostAsync($"/api/jobs/{jobId}/images", GatewayFixture.Images([("late.png", png)]));
        await CatalogAndKeyTests.AssertProblem(late, HttpStatusCode.Conflict, "job_not_open");
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task A_10000_label_vocabulary_is_refused_and_unicode_labels_are_kept_exactly_and_classify()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("labels");
        using var _ = http;
        var tooMany = await http.PostAsJsonAsync("/api/vocabularies", new { name = "huge", labels = Enumerable.Range(0, 10_000).Select(i => $"label {i}") });
        await CatalogAndKeyTests.AssertProblem(tooMany, HttpStatusCode.BadRequest, "too_many_labels", "1000");
        var duplicate = await http.PostAsJsonAsync("/api/vocabularies", new { name = "dups", labels = new[] { "a", "a" } });
        await CatalogAndKeyTests.AssertProblem(duplicate, HttpStatusCode.BadRequest, "invalid_request", "distinct");
        var tooLong = await http.PostAsJsonAsync("/api/vocabularies", new { name = "long", labels = new[] { "a", new string('b', 201) } });
        await CatalogAndKeyTests.AssertProblem(tooLong, HttpStatusCode.BadRequest, "invalid_request", "200");

        string[] unicode = ["猫", "chien 🐕", "Ünïcödé façade", "قطة", "кошка", "e\u0301clair", "\"quoted\", comma", "=cmd|' /C calc'!A0"];
        var created = await CatalogAndKeyTests.Created(await http.PostAsJsonAsync("/api/vocabularies", new { name = "unicode", labels = unicode }));
        Assert.Equal(unicode, created.GetProperty("labels").EnumerateArray().Select(l => l.GetProperty("label").GetString()));
        var read = await http.GetFromJsonAsync<JsonElement>("/api/vocabularies/unicode");
        Assert.Equal(unicode, read.GetProperty("labels").EnumerateArray().Select(l => l.GetProperty("label").GetString()));

        var job = await CatalogAndKeyTests.Created(await http.PostAsJsonAsync("/api/jobs", new { vocabulary = "unicode", promptConfiguration = "default" }));
        var jobId = job.GetProperty("jobId").GetString()!;
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages([0, 1, 2]));
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(1));
        var results = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}/results");
        Assert.All(results.GetProperty("items").EnumerateArray(), r => Assert.Contains(r.GetProperty("label").GetString(), unicode));
        // The CSV export quotes what needs quoting and neutralises formulas.
        var csv = await http.GetStringAsync($"/api/jobs/{jobId}/export");
        Assert.DoesNotContain("\n=cmd", csv);
        Assert.DoesNotContain(",=cmd", csv);
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task Quotas_and_rate_limits_answer_429_with_retry_after_and_a_stable_code()
    {
        var (tenantId, key) = await gateway.CreateTenantAsync(gateway.LimitedTenant);
        Assert.Equal(gateway.LimitedTenant, tenantId);
        using var http = gateway.WithKey(key);
        async Task<HttpResponseMessage> Paced(Func<Task<HttpResponseMessage>> call)
        {
            await Task.Delay(600);   // the tenant's bucket refills 2 requests a second
            return await call();
        }
        (await Paced(() => http.PostAsJsonAsync("/api/vocabularies", new { name = "fashion", labels = TestModels.FashionLabels }))).EnsureSuccessStatusCode();
        (await Paced(() => http.PostAsJsonAsync("/api/prompt-configurations", new { name = "default", model = "tiny", views = 1024, steps = 100 }))).EnsureSuccessStatusCode();
        var slow = await CatalogAndKeyTests.Created(await Paced(() => http.PostAsJsonAsync("/api/jobs", new { vocabulary = "fashion", promptConfiguration = "default" })));
        // The second job is cheap, so the slow one (whose running batch a cancel cannot interrupt) is the only long one.
        (await Paced(() => http.PostAsJsonAsync("/api/prompt-configurations", new { name = "quick", model = "tiny", views = 16, steps = 1 }))).EnsureSuccessStatusCode();
        var other = await CatalogAndKeyTests.Created(await Paced(() => http.PostAsJsonAsync("/api/jobs", new { vocabulary = "fashion", promptConfiguration = "quick" })));
        var (a, b) = (slow.GetProperty("jobId").GetString()!, other.GetProperty("jobId").GetString()!);
        (await Paced(() => http.PostAsync($"/api/jobs/{a}/images", GatewayFixture.Images(GatewayFixture.FashionImages([0, 1, 2, 3]))))).EnsureSuccessStatusCode();
        (await Paced(() => http.PostAsync($"/api/jobs/{b}/images", GatewayFixture.Images(GatewayFixture.FashionImages([4]))))).EnsureSuccessStatusCode();

        // Images per day: 5 are used.
        var overQuota = await Paced(() => http.PostAsync($"/api/jobs/{b}/images", GatewayFixture.Images(GatewayFixture.FashionImages([5, 6]))));
        var problem = await CatalogAndKeyTests.AssertProblem(overQuota, HttpStatusCode.TooManyRequests, "quota_images_per_day", "5");
        var retry = int.Parse(overQuota.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retry, 1, 86_400);
        Assert.Equal(retry, problem.GetProperty("retryAfterSeconds").GetInt32());

        // Concurrent jobs: 1.
        (await Paced(() => http.PostAsync($"/api/jobs/{a}/start", null))).EnsureSuccessStatusCode();
        var second = await Paced(() => http.PostAsync($"/api/jobs/{b}/start", null));
        await CatalogAndKeyTests.AssertProblem(second, HttpStatusCode.TooManyRequests, "quota_concurrent_jobs");
        Assert.True(second.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        (await Paced(() => http.PostAsync($"/api/jobs/{a}/cancel", null))).EnsureSuccessStatusCode();
        (await Paced(() => http.PostAsync($"/api/jobs/{b}/start", null))).EnsureSuccessStatusCode();
        var usage = await (await Paced(() => http.GetAsync("/api/usage"))).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(5, usage.GetProperty("usage").GetProperty("imagesToday").GetInt32());

        // Requests per second: a burst past the bucket.
        var burst = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => http.GetAsync("/api/vocabularies")));
        var limited = burst.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(limited);
        Assert.All(limited, r => Assert.True(r.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1)));
        await CatalogAndKeyTests.AssertProblem(limited[0], HttpStatusCode.TooManyRequests, "rate_limited");

        // Other tenants are not limited by this one.
        var (_, _, free) = await gateway.TenantWithSetupAsync("free");
        using (free) Assert.Equal(HttpStatusCode.OK, (await free.GetAsync("/api/vocabularies")).StatusCode);
        await Task.Delay(2500);
        await http.PostAsync($"/api/jobs/{b}/cancel", null);
    }

    private async Task AssertHealthyAsync()
    {
        using var http = gateway.Anonymous();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/ready")).StatusCode);
    }

    // ---- Alice: a tenant with a finished, fully flagged job, a revoked key, and things only she has ----------

    private sealed record Alice(string TenantId, string Key, string KeyId, string RevokedKey, string JobId, string Name, HttpClient Http);

    private static Alice? _alice;
    private static readonly SemaphoreSlim AliceGate = new(1, 1);

    private async Task<Alice> AliceAsync()
    {
        await AliceGate.WaitAsync();
        try
        {
            if (_alice is not null && _alice.Http.BaseAddress == gateway.BaseAddress) return _alice;
            var (tenantId, key, http) = await gateway.TenantWithSetupAsync("alice", minimumConfidence: 1.0);
            (await http.PostAsJsonAsync("/api/vocabularies", new { name = "alice-only", labels = new[] { "x", "y" } })).EnsureSuccessStatusCode();
            (await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "alice-only", model = "tiny" })).EnsureSuccessStatusCode();
            await PromptArtifactTests.UploadAsync(http, "alice-only", PromptArtifactFiles.TinyDefault());
            var jobId = await GatewayFixture.CreateJobAsync(http);
            await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages([0, 1]));
            (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
            await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(1));
            var keys = await http.GetFromJsonAsync<JsonElement>("/api/keys");
            var keyId = keys[0].GetProperty("keyId").GetString()!;
            var doomed = await (await http.PostAsJsonAsync("/api/keys", new { name = "doomed" })).Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync($"/api/keys/{doomed.GetProperty("keyId").GetString()}")).StatusCode);
            return _alice = new Alice(tenantId, key, keyId, doomed.GetProperty("secret").GetString()!, jobId, "alice-only", http);
        }
        finally
        {
            AliceGate.Release();
        }
    }

    private static async Task<HttpResponseMessage> Send(HttpClient client, string method, string route, string? body, Alice alice)
    {
        string Fill(string s) => s.Replace("{tenantId}", alice.TenantId).Replace("{keyId}", alice.KeyId).Replace("{name}", alice.Name)
            .Replace("{version}", "1").Replace("{jobId}", alice.JobId).Replace("{index}", "0");
        var path = Fill(route);
        if (body is not null && body != "multipart") body = Fill(body);
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body == "multipart") request.Content = GatewayFixture.Images([("x.png", TestModels.FashionPng(0))]);
        else if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        return await client.SendAsync(request);
    }

    private static async Task<JsonElement> ProblemOf(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement;
    }

    /// <summary>Sends a body without Content-Length (chunked), as a streaming client would.</summary>
    private sealed class ChunkedContent : HttpContent
    {
        private readonly HttpContent _inner;

        public ChunkedContent(HttpContent inner)
        {
            _inner = inner;
            foreach (var h in inner.Headers) Headers.TryAddWithoutValidation(h.Key, h.Value);
            Headers.ContentLength = null;
        }

        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => _inner.CopyToAsync(stream);

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }
}
