using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Error responses are as guarded and as specific as the others.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ErrorResponseTests(GatewayFixture gateway)
{
    [Fact]
    public async Task Every_error_response_carries_the_security_headers()
    {
        var (_, key) = await gateway.CreateTenantAsync(prefix: "headers");
        using var http = gateway.WithKey(key);
        using var anonymous = gateway.Anonymous();
        var responses = new List<(string What, HttpResponseMessage Response)>
        {
            ("404 from a grain's exception", await http.GetAsync("/api/jobs/job-0123456789abcdef")),
            ("400 from a handler", await http.PostAsJsonAsync("/api/jobs", new { })),
            ("401 without a key", await anonymous.GetAsync("/api/jobs")),
            ("404 of an unknown route", await http.GetAsync("/api/no-such-thing")),
            ("200 of the console", await anonymous.GetAsync("/")),
        };
        foreach (var (what, r) in responses)
        {
            Assert.True(r.Headers.TryGetValues("X-Content-Type-Options", out var nosniff) && nosniff.Single() == "nosniff", $"{what}: no nosniff");
            Assert.True(r.Headers.Contains("X-Frame-Options"), $"{what}: no X-Frame-Options");
            Assert.True(r.Headers.Contains("Referrer-Policy"), $"{what}: no Referrer-Policy");
            Assert.True(r.Headers.Contains("Content-Security-Policy"), $"{what}: no Content-Security-Policy");
        }
        Assert.Equal(HttpStatusCode.NotFound, responses[0].Response.StatusCode);
    }

    [Fact]
    public async Task An_evaluation_upload_whose_every_image_is_rejected_answers_422_with_the_reasons()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("evalrej");
        var created = await http.PostAsJsonAsync("/api/evaluations", new { vocabulary = "fashion", promptConfiguration = "default", attack = "pgd", epsilons = new[] { 1.0 / 255 }, steps = 1 });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var jobId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString();
        using var content = new MultipartFormDataContent
        {
            { new ByteArrayContent("not an image"u8.ToArray()), "coat", "a.png" },
            { new ByteArrayContent(Grains.Tests.Infrastructure.TestModels.FashionPng(0)), "no-such-label", "b.png" },
        };
        var upload = await http.PostAsync($"/api/evaluations/{jobId}/images", content);
        Assert.Equal((HttpStatusCode)422, upload.StatusCode);
        var problem = await upload.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("images_rejected", problem.GetProperty("code").GetString());
        Assert.Equal(2, problem.GetProperty("rejected").GetArrayLength());
    }
}
