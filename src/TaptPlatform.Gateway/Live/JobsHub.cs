using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;

namespace TaptPlatform.Gateway.Live;

/// <summary>
/// Live job progress for an authenticated tenant (see <see cref="JobsHubMethods"/> for the contract). A tenant can
/// follow its own jobs only: any other job id, existing or not, gets the same "not found".
/// </summary>
[Authorize(Policy = TaptAuth.TenantPolicy)]
public sealed class JobsHub(JobEventBridge bridge, LiveConnections connections) : Hub
{
    public override async Task OnConnectedAsync()
    {
        var user = Context.User!;
        var secret = TaptAuth.KeyOf(user);
        if (secret is null)
        {
            Context.Abort();
            return;
        }
        connections.Add(Context, user.TenantId(), user.FindFirst(TaptAuth.KeyIdClaim)?.Value ?? "", secret);
        await base.OnConnectedAsync();
    }

    /// <summary>Follows a job: returns its current state; live events follow.</summary>
    public async Task<JobSnapshot> Subscribe(string jobId)
    {
        var outbox = connections.Get(Context.ConnectionId) ?? throw new HubException("the connection is closing");
        try
        {
            return await bridge.SubscribeAsync(outbox, jobId);
        }
        catch (Exception e) when (e is TaptNotFoundException or TaptRequestException)
        {
            throw new HubException(e.Message);
        }
    }

    public Task Unsubscribe(string jobId)
    {
        if (connections.Get(Context.ConnectionId) is { } outbox) bridge.Unfollow(outbox, jobId);
        return Task.CompletedTask;
    }

    public override async Task OnDisconnectedAsync(Exception? exception)
    {
        if (connections.Remove(Context.ConnectionId) is { } outbox)
        {
            bridge.Disconnected(outbox);
            await outbox.DisposeAsync();
        }
        await base.OnDisconnectedAsync(exception);
    }
}

/// <summary>Checks, before every hub call, that the connection's key is still valid (it may have been revoked since it connected).</summary>
public sealed class KeyStillValidFilter(ApiKeyValidator validator, LiveConnections connections) : IHubFilter
{
    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        var secret = connections.SecretOf(invocationContext.Context.ConnectionId);
        if (secret is null || await validator.ValidateAsync(secret) is null)
        {
            invocationContext.Context.Abort();
            throw new HubException("unauthenticated: the API key is no longer valid");
        }
        return await next(invocationContext);
    }
}
