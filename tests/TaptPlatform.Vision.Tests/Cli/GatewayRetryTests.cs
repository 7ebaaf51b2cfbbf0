using System.Net;
using System.Text;
using TaptPlatform.Cli;
using TaptPlatform.Cli.Commands;

namespace TaptPlatform.Vision.Tests.Cli;

/// <summary>Which gateway requests the CLI's resilience pipeline sends again, against a scripted gateway.</summary>
public sealed class GatewayRetryTests : IDisposable
{
    private const string Job = """{"jobId":"j1","name":null,"state":"open","counts":{"total":0,"completed":0,"succeeded":0,"failed":0,"flagged":0},"vocabulary":"v","promptConfiguration":"default","model":"m","throughputPerSecond":null,"etaSeconds":null,"waiting":null}""";
    private const string Receipt = """{"jobId":"j1","accepted":[],"rejected":[],"totalImages":1}""";
    private readonly string _image = Path.Combine(Path.GetTempPath(), $"tapt-retry-{Guid.NewGuid():N}.png");

    public GatewayRetryTests() => File.WriteAllBytes(_image, [0x89, 0x50, 0x4E, 0x47]);

    public void Dispose() => File.Delete(_image);

    /// <summary>Answers each request with the next scripted status (the last one repeats) and counts them.</summary>
    private sealed class ScriptedGateway(params (HttpStatusCode Status, string Body)[] answers) : HttpMessageHandler
    {
        public int Requests;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var (status, body) = answers[Math.Min(Requests++, answers.Length - 1)];
            var response = new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, "application/json"), RequestMessage = request };
            if (status == HttpStatusCode.TooManyRequests) response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.Zero);
            return Task.FromResult(response);
        }
    }

    private static (HttpStatusCode, string) Problem(HttpStatusCode status, string code) => (status, $$"""{"title":"x","code":"{{code}}"}""");

    [Fact]
    public async Task Reads_are_retried_after_a_transient_failure()
    {
        var gateway = new ScriptedGateway(Problem(HttpStatusCode.ServiceUnavailable, "unavailable"), (HttpStatusCode.OK, Job));
        using var client = new GatewayClient("http://gateway.test", "key", gateway);
        Assert.Equal("j1", (await client.GetJobAsync("j1", CancellationToken.None)).JobId);
        Assert.Equal(2, gateway.Requests);
    }

    [Fact]
    public async Task Start_is_retried_as_the_gateway_makes_it_idempotent()
    {
        var gateway = new ScriptedGateway(Problem(HttpStatusCode.TooManyRequests, "cluster_busy"), (HttpStatusCode.OK, Job));
        using var client = new GatewayClient("http://gateway.test", "key", gateway);
        await client.StartAsync("j1", CancellationToken.None);
        Assert.Equal(2, gateway.Requests);
    }

    [Fact]
    public async Task An_upload_is_sent_again_only_after_the_rate_limiter_refused_it()
    {
        var limited = new ScriptedGateway(Problem(HttpStatusCode.TooManyRequests, "rate_limited"), (HttpStatusCode.OK, Receipt));
        using (var client = new GatewayClient("http://gateway.test", "key", limited))
            await client.UploadAsync("j1", [_image], CancellationToken.None);
        Assert.Equal(2, limited.Requests);

        // A 5xx or a quota 429 may come after the gateway stored some of the images: not sent twice.
        foreach (var answer in new[] { Problem(HttpStatusCode.ServiceUnavailable, "unavailable"), Problem(HttpStatusCode.TooManyRequests, "quota_images_per_day") })
        {
            var gateway = new ScriptedGateway(answer, (HttpStatusCode.OK, Receipt));
            using var client = new GatewayClient("http://gateway.test", "key", gateway);
            await Assert.ThrowsAsync<GatewayException>(() => client.UploadAsync("j1", [_image], CancellationToken.None));
            Assert.Equal(1, gateway.Requests);
        }
    }

    [Fact]
    public async Task Creating_a_job_is_not_sent_twice_after_a_server_error()
    {
        var gateway = new ScriptedGateway(Problem(HttpStatusCode.InternalServerError, "internal"), (HttpStatusCode.Created, Job));
        using var client = new GatewayClient("http://gateway.test", "key", gateway);
        var e = await Assert.ThrowsAsync<GatewayException>(() => client.CreateJobAsync("v", "default", null, 0, CancellationToken.None));
        Assert.Contains("500", e.Message);
        Assert.Equal(1, gateway.Requests);
    }

    [Fact]
    public async Task A_labelled_batch_refused_whole_counts_as_refused_images_and_the_next_batch_still_goes_up()
    {
        // 51 images: a first batch of 50 the vocabulary does not know (422 images_rejected), then one it takes.
        const string refusedWhole = """{"title":"No image accepted","code":"images_rejected","detail":"none of the images was accepted","rejected":[{"name":"a.png","reason":"UnknownLabel"}],"totalImages":0}""";
        const string taken = """{"jobId":"e1","acceptedIndices":[0],"rejected":[],"totalImages":1}""";
        var gateway = new ScriptedGateway((HttpStatusCode.UnprocessableEntity, refusedWhole), (HttpStatusCode.OK, taken));
        using var client = new GatewayClient("http://gateway.test", "key", gateway);
        var images = Enumerable.Range(0, 50).Select(_ => ("ankle-boot", _image)).Append(("sandal", _image)).ToList();
        var stdout = new StringWriter();

        var accepted = await LabelledFolder.UploadAsync("folder", images, "e1",
            chunk => client.UploadLabelledImagesAsync("api/evaluations/e1/images", chunk, CancellationToken.None), stdout);

        Assert.Equal(1, accepted);
        Assert.Equal(2, gateway.Requests);
        Assert.Contains("refused a.png: UnknownLabel", stdout.ToString());

        // Every batch refused: an error naming the job left open.
        var none = new ScriptedGateway((HttpStatusCode.UnprocessableEntity, refusedWhole));
        using var refusing = new GatewayClient("http://gateway.test", "key", none);
        var e = await Assert.ThrowsAsync<CliException>(() => LabelledFolder.UploadAsync("folder", images, "e1",
            chunk => refusing.UploadLabelledImagesAsync("api/evaluations/e1/images", chunk, CancellationToken.None), TextWriter.Null));
        Assert.Contains("e1 stays open", e.Message);

        // Any other refusal still stops the upload.
        var quota = new ScriptedGateway(Problem(HttpStatusCode.TooManyRequests, "quota_images_per_day"));
        using var limited = new GatewayClient("http://gateway.test", "key", quota);
        var stopped = await Assert.ThrowsAsync<GatewayException>(() => LabelledFolder.UploadAsync("folder", images, "e1",
            chunk => limited.UploadLabelledImagesAsync("api/evaluations/e1/images", chunk, CancellationToken.None), TextWriter.Null));
        Assert.Equal("quota_images_per_day", stopped.Code);
    }
}
