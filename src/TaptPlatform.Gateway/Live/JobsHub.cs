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
public sealed class JobsHub(JobEventBridge bridge, EvaluationEventBridge evaluations, PromptTrainingEventBridge trainings, LiveConnections connections) : Hub
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

    /// <summary>
    /// Follows a job: returns its current state; live events follow. An id the tenant's evaluation index holds is followed
    /// as an evaluation (as <see cref="SubscribeEvaluation"/>), so clients that subscribed evaluations here keep working.
    /// </summary>
    public async Task<JobSnapshot> Subscribe(string jobId)
    {
        var outbox = Outbox();
        return await Refusals(async () => await evaluations.IsEvaluationAsync(outbox.TenantId, jobId)
            ? await evaluations.SubscribeAsync(outbox, jobId)
            : await bridge.SubscribeAsync(outbox, jobId));
    }

    public Task Unsubscribe(string jobId)
    {
        if (connections.Get(Context.ConnectionId) is { } outbox)
        {
            evaluations.Unfollow(outbox, jobId);
            bridge.Unfollow(outbox, jobId);
        }
        return Task.CompletedTask;
    }

    /// <summary>Follows a robustness evaluation: its status in the snapshot, then <c>jobProgress</c> events with its outcome counts.</summary>
    public async Task<JobSnapshot> SubscribeEvaluation(string evaluationId)
    {
        var outbox = Outbox();
        return await Refusals(() => evaluations.SubscribeAsync(outbox, evaluationId));
    }

    public Task UnsubscribeEvaluation(string evaluationId)
    {
        if (connections.Get(Context.ConnectionId) is { } outbox) evaluations.Unfollow(outbox, evaluationId);
        return Task.CompletedTask;
    }

    /// <summary>Follows a prompt training job: its status (with the curve so far), then <c>jobProgress</c> events counting epochs, each with the epoch just finished.</summary>
    public async Task<PromptTrainingStatus> SubscribeTraining(string jobId)
    {
        var outbox = Outbox();
        return await Refusals(() => trainings.SubscribeAsync(outbox, jobId));
    }

    public Task UnsubscribeTraining(string jobId)
    {
        if (connections.Get(Context.ConnectionId) is { } outbox) trainings.Unfollow(outbox, jobId);
        return Task.CompletedTask;
    }

    private ConnectionOutbox Outbox() => connections.Get(Context.ConnectionId) ?? throw new HubException("the connection is closing");

    /// <summary>A refusal (not found, a limit) as the hub error the caller sees.</summary>
    private static async Task<T> Refusals<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception e) when (e is TaptNotFoundException or TaptRequestException)
        {
            throw new HubException(e.Message);
        }
    }

    public override async Task OnDisconnectedAsync(Exception? exception)
    {
        if (connections.Remove(Context.ConnectionId) is { } outbox)
        {
            evaluations.Disconnected(outbox);
            trainings.Disconnected(outbox);
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
