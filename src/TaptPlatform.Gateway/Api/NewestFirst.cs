using System.Collections.Immutable;
using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Api;

/// <summary>A tenant's listing from its index of ids (oldest first): the newest <c>limit</c> (50 by default, 1–200), skipping ids whose grain no longer knows them.</summary>
public static class NewestFirst
{
    public static async Task<ImmutableArray<T>> StatusesAsync<T>(IEnumerable<string> ids, int? limit, Func<string, Task<T>> status) where T : class
    {
        var statuses = await Task.WhenAll(ids.Reverse().Take(Math.Clamp(limit ?? 50, 1, 200)).Select(async id =>
        {
            try
            {
                return await status(id);
            }
            catch (TaptNotFoundException)
            {
                return null;
            }
        }));
        return statuses.OfType<T>().ToImmutableArray();
    }
}
