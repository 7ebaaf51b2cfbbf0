using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Azure.Storage.Blobs;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Retention through the API: a tenant's periods within the operator's, the operator's sweep, and expired inputs.</summary>
[Collection(GatewayCollection.Name)]
public sealed class RetentionApiTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_tenant_shortens_its_periods_within_the_operators_and_an_expired_input_answers_410_while_its_result_stays()
    {
        var (tenantId, _, http) = await gateway.TenantWithSetupAsync("retention", steps: 1);
        var status = await http.GetFromJsonAsync<JsonElement>("/api/retention");
        Assert.Equal("30.00:00:00", status.GetProperty("operatorDefault").GetProperty("inputs").GetString());

        // Longer than the operator's: a problem naming the limit, nothing changed.
        var tooLong = await http.PutAsJsonAsync("/api/retention", new { inputs = "31.00:00:00" });
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal("application/problem+json", tooLong.Content.Headers.ContentType?.MediaType);
        Assert.Contains("inputs: at most 30.00:00:00", await tooLong.Content.ReadAsStringAsync());
        var malformed = await http.PutAsync("/api/retention", new StringContent("{\"inputs\": \"a week\"}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);

        var set = await (await http.PutAsJsonAsync("/api/retention", new { inputs = "7.00:00:00", audit = "1.00:00:00" })).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("7.00:00:00", set.GetProperty("effective").GetProperty("inputs").GetString());
        Assert.Equal("1.00:00:00", set.GetProperty("effective").GetProperty("audit").GetString());
        Assert.Equal("365.00:00:00", set.GetProperty("effective").GetProperty("results").GetString());

        // Nothing is old enough yet: the operator's sweep deletes nothing; an unknown tenant has nothing to sweep.
        using var op = gateway.Operator();
        var sweep = await (await op.PostAsync($"/api/tenants/{tenantId}/retention/sweep", null)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Empty(sweep.GetProperty("deleted").EnumerateObject());
        Assert.Equal(HttpStatusCode.NotFound, (await op.PostAsync("/api/tenants/no-such-tenant/retention/sweep", null)).StatusCode);

        // A job's input once deleted (as a sweep deletes it): 410 with a problem, while its result is still served.
        var jobId = await GatewayFixture.CreateJobAsync(http);
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages([3]));
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync($"/api/jobs/{jobId}/start", null)).StatusCode);
        await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(2));
        var container = new BlobServiceClient(gateway.Storage.ConnectionString).GetBlobContainerClient("tenant-" + tenantId);
        Assert.True((await container.DeleteBlobIfExistsAsync($"jobs/{jobId}/inputs/00000")).Value);
        var gone = await http.GetAsync($"/api/jobs/{jobId}/images/0");
        Assert.Equal(HttpStatusCode.Gone, gone.StatusCode);
        Assert.Contains("expired under the tenant's retention", await gone.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/api/jobs/{jobId}/results/0")).StatusCode);
    }
}
