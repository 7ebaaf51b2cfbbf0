using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Azure.Storage.Blobs;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// Images near the 20 MiB limit: streamed by the gateway into a staging blob and handed to the job grain by reference,
/// so the gateway's memory returns to where it was once they are stored.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class LargeUploadTests(GatewayFixture gateway, ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task Memory_returns_to_its_baseline_after_large_uploads_and_every_image_is_stored()
    {
        await using var large = await LargeGateway.StartAsync(gateway);
        // The production shape: a gateway that is an Orleans client of the cluster (here the large gateway's silo), so
        // every grain call is a serialized message; both run in this process, so the measure covers both sides.
        await using var client = await large.StartClientAsync();
        var (tenantId, http) = await client.TenantAsync("mem");
        var jobId = await GatewayFixture.CreateJobAsync(http);
        var images = Enumerable.Range(0, 8).Select(i => ($"large-{i}.png", LargePng(seed: i))).ToList();
        Assert.All(images, i => Assert.InRange(i.Item2.Length, 18_500_000, 20 * MiB));
        // Warm-up: every code path of an upload (small and staged) runs once before the baseline.
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages([0]));
        await GatewayFixture.UploadAsync(http, jobId, [("warm-up.png", LargePng(seed: 100, side: 800))]);

        var before = Measure("baseline");
        for (var i = 0; i < images.Count; i++)
        {
            var receipt = await GatewayFixture.UploadAsync(http, jobId, [images[i]]);
            Assert.Equal(new[] { new AcceptedImage(i + 2, images[i].Item1) }, receipt.Accepted.ToArray());
            Assert.Empty(receipt.Rejected);
        }
        var after = Measure("after 8 uploads");

        // The live managed heap after full blocking compacting collections. One part is ~19 MB and the failure this
        // guards against kept a 32 MiB pooled buffer per part (or the parts themselves); 16 MiB is below one part and
        // well above the noise of a warmed-up gateway (caches, connection buffers, a few MB).
        Assert.True(after - before < 16 * MiB,
            $"the managed heap grew by {(after - before) / (double)MiB:F1} MiB over 8 uploads of ~19 MB ({before / (double)MiB:F1} → {after / (double)MiB:F1} MiB)");

        // Stored, in order, byte for byte; and no staging blob is left.
        var status = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}");
        Assert.Equal(10, status.GetProperty("counts").GetProperty("total").GetInt32());
        for (var i = 0; i < images.Count; i++)
        {
            using var stored = await http.GetAsync($"/api/jobs/{jobId}/images/{i + 2}", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal("image/png", stored.Content.Headers.ContentType?.MediaType);
            Assert.Equal(images[i].Item2.Length, stored.Content.Headers.ContentLength);
            Assert.Equal(SHA256.HashData(images[i].Item2), await SHA256.HashDataAsync(await stored.Content.ReadAsStreamAsync()));
        }
        Assert.Empty(await large.StagingBlobsAsync(tenantId));

        // Reading them back (streamed from storage by the gateway) does not keep memory either.
        var read = Measure("after reading the 8 images back");
        Assert.True(read - before < 16 * MiB,
            $"the managed heap grew by {(read - before) / (double)MiB:F1} MiB after reading back 8 images of ~19 MB ({before / (double)MiB:F1} → {read / (double)MiB:F1} MiB)");
    }

    [Fact]
    public async Task A_too_large_part_streamed_to_staging_gets_413_and_leaves_no_staging_blob()
    {
        await using var large = await LargeGateway.StartAsync(gateway);
        var (tenantId, http) = await large.TenantAsync("big");
        var jobId = await GatewayFixture.CreateJobAsync(http);
        // A valid small image first (held in memory), then one part a byte over the 20 MiB limit.
        var response = await http.PostAsync($"/api/jobs/{jobId}/images",
            GatewayFixture.Images([.. GatewayFixture.FashionImages([0]), ("too-big.png", RandomNumberGenerator.GetBytes((int)(20 * MiB) + 1))]));
        await CatalogAndKeyTests.AssertProblem(response, HttpStatusCode.RequestEntityTooLarge, "image_too_large", "too-big.png");
        Assert.Empty(await large.StagingBlobsAsync(tenantId));
        Assert.Equal(0, (await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}")).GetProperty("counts").GetProperty("total").GetInt32());

        // A large image refused by the job grain (not an image) is not left in staging either.
        var refused = await http.PostAsync($"/api/jobs/{jobId}/images", GatewayFixture.Images([("noise.png", RandomNumberGenerator.GetBytes((int)(3 * MiB)))]));
        var problem = await CatalogAndKeyTests.AssertProblem(refused, HttpStatusCode.UnprocessableEntity, "images_rejected");
        Assert.Contains("UnknownFormat", problem.GetProperty("rejected")[0].GetProperty("reason").GetString());
        Assert.Empty(await large.StagingBlobsAsync(tenantId));
    }

    [Fact]
    public async Task Small_and_large_images_mixed_in_one_request_keep_their_order_in_the_receipt()
    {
        await using var large = await LargeGateway.StartAsync(gateway);
        var (tenantId, http) = await large.TenantAsync("mix");
        var jobId = await GatewayFixture.CreateJobAsync(http);
        var small = GatewayFixture.FashionImages([1, 2, 3]).ToList();
        var bigA = ("big-a.png", LargePng(seed: 7, side: 1200));
        var bigB = ("big-b.png", LargePng(seed: 8, side: 1000));
        (string, byte[]) broken = ("broken.png", [.. bigB.Item2.AsSpan(0, 2_000_000)]);   // staged, then refused: truncated
        var offered = new List<(string Name, byte[] Bytes)> { small[0], bigA, small[1], broken, bigB, small[2] };

        var receipt = await GatewayFixture.UploadAsync(http, jobId, offered);
        Assert.Equal(
            new AcceptedImage[] { new(0, "fashion-1.png"), new(1, "big-a.png"), new(2, "fashion-2.png"), new(3, "big-b.png"), new(4, "fashion-3.png") },
            receipt.Accepted.ToArray());
        var rejected = Assert.Single(receipt.Rejected);
        Assert.Equal("broken.png", rejected.Name);
        Assert.StartsWith("Truncated", rejected.Reason);
        Assert.Equal(5, receipt.TotalImages);
        var expected = new[] { small[0], bigA, small[1], bigB, small[2] };
        for (var i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i].Item2, await http.GetByteArrayAsync($"/api/jobs/{jobId}/images/{i}"));
        Assert.Empty(await large.StagingBlobsAsync(tenantId));

        // Every image is classified: the large ones (above Tapt:Jobs:InlineImageBytes) read from their blobs by the model grain.
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        var done = await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(3));
        Assert.Equal(5, done.GetProperty("counts").GetProperty("succeeded").GetInt32());
        var results = (await http.GetFromJsonAsync<ResultPageView>($"/api/jobs/{jobId}/results", GatewayFixture.Json))!;
        Assert.All(results.Items, r => Assert.Null(r.Error));
    }

    [Fact]
    public async Task An_evaluation_upload_streams_large_labelled_parts_and_leaves_no_staging_blob_whether_taken_or_refused()
    {
        await using var large = await LargeGateway.StartAsync(gateway);
        var (tenantId, http) = await large.TenantAsync("eval");
        var created = await http.PostAsJsonAsync("/api/evaluations", new { vocabulary = "fashion", promptConfiguration = "default", attack = "pgd", epsilons = new[] { 1.0 / 255 }, steps = 1 });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var evaluationId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString();
        var coat = Grains.Tests.Infrastructure.TestModels.FashionLabels[4];
        MultipartFormDataContent Parts(params (string Label, string Name, byte[] Bytes)[] parts)
        {
            var content = new MultipartFormDataContent();
            foreach (var (label, name, bytes) in parts) content.Add(new ByteArrayContent(bytes), label, name);
            return content;
        }
        var big = LargePng(seed: 3, side: 1100);

        // Four images cost more than the evaluation may (the large gateway's limit is 3 per evaluation): refused whole, staged parts deleted.
        var tooMany = await http.PostAsync($"/api/evaluations/{evaluationId}/images",
            Parts((coat, "a.png", TestModelsPng(0)), (coat, "big.png", big), (coat, "big2.png", big), (coat, "b.png", TestModelsPng(1))));
        await CatalogAndKeyTests.AssertProblem(tooMany, HttpStatusCode.UnprocessableEntity, "evaluation_too_costly");
        Assert.Empty(await large.StagingBlobsAsync(tenantId));

        // Small and large in one request: order kept, the large noise part refused by the grain, nothing left in staging.
        var upload = await http.PostAsync($"/api/evaluations/{evaluationId}/images",
            Parts((coat, "a.png", TestModelsPng(0)), (coat, "big.png", big), (coat, "noise.png", RandomNumberGenerator.GetBytes((int)(2 * MiB)))));
        Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
        var receipt = await upload.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal([0, 1], receipt.GetProperty("acceptedIndices").EnumerateArray().Select(i => i.GetInt32()));
        var rejected = Assert.Single(receipt.GetProperty("rejected").EnumerateArray());
        Assert.Equal("noise.png", rejected.GetProperty("name").GetString());
        Assert.StartsWith("UnknownFormat", rejected.GetProperty("reason").GetString());
        Assert.Equal(2, receipt.GetProperty("totalImages").GetInt32());
        Assert.Empty(await large.StagingBlobsAsync(tenantId));
    }

    private static byte[] TestModelsPng(int index) => Grains.Tests.Infrastructure.TestModels.FashionPng(index);

    /// <summary>The live managed heap after full, blocking, compacting collections (aggressive: the GC also releases what it can).</summary>
    private long Measure(string when)
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        var total = GC.GetTotalMemory(forceFullCollection: true);
        var info = GC.GetGCMemoryInfo(GCKind.Any);
        output.WriteLine($"{when}: live managed {total / (double)MiB:F1} MiB, heap {info.HeapSizeBytes / (double)MiB:F1} MiB, " +
            $"committed {info.TotalCommittedBytes / (double)MiB:F1} MiB, working set {Environment.WorkingSet / (double)MiB:F1} MiB");
        return total;
    }

    /// <summary>A valid PNG of random (incompressible) pixels: side × side × 3 bytes and a little more (2520: ~19 MB).</summary>
    internal static byte[] LargePng(int seed, int side = 2520)
    {
        var pixels = new byte[side * side * 3];
        new Random(seed).NextBytes(pixels);
        using var image = Image.LoadPixelData<Rgb24>(pixels, side, side);
        using var encoded = new MemoryStream();
        image.SaveAsPng(encoded, new PngEncoder { CompressionLevel = PngCompressionLevel.NoCompression });
        return encoded.ToArray();
    }

    /// <summary>
    /// A gateway of its own (own cluster, same storage) whose limits admit images up to 20 MiB, staged above 1 MiB
    /// (and evaluations of at most 3 one-step images).
    /// </summary>
    private sealed class LargeGateway(GatewayFixture fixture, IReadOnlyDictionary<string, string> settings, GatewayFactory factory, Uri baseAddress) : IAsyncDisposable
    {
        public static async Task<LargeGateway> StartAsync(GatewayFixture fixture)
        {
            var clusterId = "gw-large-" + Guid.NewGuid().ToString("N")[..10];
            var settings = new Dictionary<string, string>(fixture.Settings)
            {
                ["Tapt:Gateway:MaxImageBytes"] = (20 * MiB).ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Tapt:Gateway:MaxUploadBytes"] = (96 * MiB).ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Tapt:Gateway:StagingThresholdBytes"] = MiB.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Tapt:Gateway:MaxEvaluationCost"] = "3",
                ["Orleans:ClusterId"] = clusterId,
                ["Orleans:ServiceId"] = clusterId,
                ["Orleans:SiloPort"] = GatewayFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Orleans:GatewayPort"] = GatewayFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            var (factory, baseAddress) = await GatewayFixture.StartAsync(settings);
            return new LargeGateway(fixture, settings, factory, baseAddress);
        }

        /// <summary>A second gateway with the same limits, in client mode, on this gateway's cluster.</summary>
        public async Task<LargeGateway> StartClientAsync()
        {
            var client = new Dictionary<string, string>(settings) { ["Tapt:Gateway:Mode"] = "client" };
            var (factory, baseAddress) = await GatewayFixture.StartAsync(client);
            return new LargeGateway(fixture, client, factory, baseAddress);
        }

        public async Task<(string TenantId, HttpClient Http)> TenantAsync(string prefix)
        {
            var tenantId = $"{prefix}-{Guid.NewGuid():N}"[..20];
            using var op = new HttpClient { BaseAddress = baseAddress };
            op.DefaultRequestHeaders.Add("X-Api-Key", GatewayFixture.OperatorKey);
            var created = await op.PostAsJsonAsync("/api/tenants", new { id = tenantId, keyName = "tests" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetProperty("secret").GetString()!;
            var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(2) };
            http.DefaultRequestHeaders.Add("X-Api-Key", key);
            (await http.PostAsJsonAsync("/api/vocabularies", new { name = "fashion", labels = Grains.Tests.Infrastructure.TestModels.FashionLabels })).EnsureSuccessStatusCode();
            (await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "default", model = Grains.Tests.Infrastructure.TestModels.Tiny, steps = 2 })).EnsureSuccessStatusCode();
            return (tenantId, http);
        }

        /// <summary>Every blob under the staging prefix of the tenant's container.</summary>
        public async Task<List<string>> StagingBlobsAsync(string tenantId)
        {
            var container = new BlobServiceClient(fixture.Storage.ConnectionString).GetBlobContainerClient(Grains.Storage.TenantContainers.NameOf(tenantId));
            var names = new List<string>();
            if (!await container.ExistsAsync()) return names;
            await foreach (var blob in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = "staging/", States = Azure.Storage.Blobs.Models.BlobStates.Uncommitted }))
                names.Add(blob.Name);
            return names;
        }

        public ValueTask DisposeAsync() => factory.DisposeAsync();
    }
}
