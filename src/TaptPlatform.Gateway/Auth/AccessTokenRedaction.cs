using Microsoft.AspNetCore.Http.Extensions;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

namespace TaptPlatform.Gateway.Auth;

/// <summary>The <c>access_token</c> a request carried in its query, kept out of the query itself.</summary>
public sealed record AccessTokenFeature(string Token);

/// <summary>
/// Takes the <c>access_token</c> query parameter (a browser's hub connection carries the tenant key there, since
/// WebSockets and EventSource cannot set headers) out of every request before anything sees the request: the hosting
/// layer logs the URL ("Request starting …") and starts its span before any middleware runs, so the query is rewritten
/// where the request's context is created, with the token kept in an <see cref="AccessTokenFeature"/> for
/// authentication. Logs, spans (<c>url.query</c>) and the dashboard's log stream then show <c>access_token=REDACTED</c>.
/// </summary>
public sealed class AccessTokenRedactingContextFactory(IHttpContextFactory inner) : IHttpContextFactory
{
    public const string Parameter = "access_token";
    public const string Redacted = "REDACTED";

    public HttpContext Create(IFeatureCollection featureCollection)
    {
        if (featureCollection.Get<IHttpRequestFeature>() is { } request && RedactQuery(request.QueryString) is { } redacted)
        {
            featureCollection.Set(new AccessTokenFeature(redacted.Token));
            request.QueryString = redacted.Query;
            var queryStart = request.RawTarget.IndexOf('?', StringComparison.Ordinal);
            if (queryStart >= 0) request.RawTarget = request.RawTarget[..queryStart] + redacted.Query;
        }
        return inner.Create(featureCollection);
    }

    public void Dispose(HttpContext httpContext) => inner.Dispose(httpContext);

    /// <summary>The query with the token's value replaced, and the token; null when the query carries none.</summary>
    internal static (string Query, string Token)? RedactQuery(string? query)
    {
        if (string.IsNullOrEmpty(query) || !query.Contains(Parameter, StringComparison.OrdinalIgnoreCase)) return null;
        var parsed = QueryHelpers.ParseQuery(query);
        var name = parsed.Keys.FirstOrDefault(k => string.Equals(k, Parameter, StringComparison.OrdinalIgnoreCase));
        if (name is null) return null;
        var token = parsed[name].ToString();
        parsed[name] = new StringValues(Redacted);
        return (new QueryBuilder(parsed).ToQueryString().Value ?? "", token);
    }
}
