using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Hostile requests get a 4xx that names the real reason in our own words, never a library's exception text.</summary>
[Collection(GatewayCollection.Name)]
public sealed class HostileRequestTests(GatewayFixture gateway)
{
    /// <summary>Fragments of .NET and library exception messages (and of stack traces) that must never reach a client.</summary>
    private static readonly string[] LibraryText =
    [
        "Exception", "System.", "Microsoft.", "   at ", "Failed to read parameter", "Failed to bind parameter", "Required parameter",
        "Multipart body length limit", "Form value count limit", "Unexpected end of", "Index was outside", "Object reference",
        "Implicit body inferred", "Expected a supported JSON media type",
    ];

    [Fact]
    public async Task Malformed_oversized_and_overcounted_bodies_get_4xx_naming_their_reason_without_library_text()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("hostile-req");
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http);
        var created = await http.PostAsJsonAsync("/api/evaluations", new { vocabulary = "fashion", promptConfiguration = "default", attack = "pgd", epsilons = new[] { 1.0 / 255 }, steps = 1 });
        var evaluationId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;

        var cases = new (string What, Func<Task<HttpResponseMessage>> Send, HttpStatusCode Status, string Code, string Reason)[]
        {
            ("truncated JSON", () => http.PostAsync("/api/vocabularies", Json(""""{"name": "x", "labels": ["""")), HttpStatusCode.BadRequest, "malformed_request", "JSON"),
            ("JSON of the wrong shape", () => http.PostAsync("/api/jobs", Json("[1, 2]")), HttpStatusCode.BadRequest, "malformed_request", "JSON"),
            ("JSON as text/plain", () => http.PostAsync("/api/vocabularies", new StringContent("{}", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType, "unsupported_media_type", "JSON"),
            ("a query parameter of the wrong type", () => http.GetAsync("/api/evaluations?limit=many"), HttpStatusCode.BadRequest, "malformed_request", "'limit'"),
            ("a broken multipart body (job)", () => http.PostAsync($"/api/jobs/{jobId}/images", BrokenMultipart()), HttpStatusCode.BadRequest, "malformed_request", "multipart"),
            ("a broken multipart body (evaluation)", () => http.PostAsync($"/api/evaluations/{evaluationId}/images", BrokenMultipart()), HttpStatusCode.BadRequest, "malformed_request", "multipart"),
            ("a 200 MB evaluation upload", () => http.SendAsync(Declared($"/api/evaluations/{evaluationId}/images", 200L * 1024 * 1024)), HttpStatusCode.RequestEntityTooLarge, "payload_too_large", "bytes"),
            ("a 10,000-part evaluation upload", () => http.PostAsync($"/api/evaluations/{evaluationId}/images", TinyParts(10_000)), HttpStatusCode.RequestEntityTooLarge, "too_many_images", "at most 1000"),
            ("a 10,000-part job upload", () => http.PostAsync($"/api/jobs/{jobId}/images", TinyParts(10_000)), HttpStatusCode.RequestEntityTooLarge, "too_many_images", "at most 1000"),
        };
        foreach (var (what, send, status, code, reason) in cases)
        {
            var response = await send();
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == status, $"{what}: expected {(int)status}, got {(int)response.StatusCode}: {body}");
            var problem = JsonDocument.Parse(body).RootElement;
            Assert.Equal(code, problem.GetProperty("code").GetString());
            Assert.True(problem.TryGetProperty("detail", out var detailProperty), $"{what}: no detail in {body}");
            var detail = detailProperty.GetString()!;
            Assert.True(detail.Contains(reason, StringComparison.Ordinal), $"{what}: '{detail}' does not name the reason ('{reason}')");
            foreach (var fragment in LibraryText) Assert.False(body.Contains(fragment, StringComparison.Ordinal), $"{what}: library text '{fragment}' in {body}");
        }
    }

    private static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    /// <summary>A multipart body whose boundary never closes and whose part has no header end.</summary>
    private static StringContent BrokenMultipart()
    {
        var content = new StringContent("--b0undary\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.png\"\r\nabc", Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=b0undary");
        return content;
    }

    private static MultipartFormDataContent TinyParts(int count)
    {
        var content = new MultipartFormDataContent();
        for (var i = 0; i < count; i++) content.Add(new ByteArrayContent([1, 2, 3]), "coat", $"{i}.png");
        return content;
    }

    /// <summary>A request declaring a body of <paramref name="length"/> bytes that waits for "100 Continue" before sending it.</summary>
    private static HttpRequestMessage Declared(string path, long length)
    {
        var content = new StreamContent(new ZeroStream(length));
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=b0undary");
        content.Headers.ContentLength = length;
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.ExpectContinue = true;
        return request;
    }

    /// <summary>Zeros, never buffered: the refusal comes before the body is read.</summary>
    private sealed class ZeroStream(long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _position);
            Array.Clear(buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
