using Microsoft.Extensions.Logging.Abstractions;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Live;

namespace TaptPlatform.Gateway.Tests;

/// <summary>The followed jobs of a bridge: following, dropping the unfollowed ones at renewal, and the race between the two.</summary>
public sealed class FollowedJobsTests
{
    private const string Job = "job-00000000000000000000000000000007";

    [Fact]
    public async Task A_follower_joining_as_a_renewal_drops_the_unfollowed_watch_gets_a_fresh_watch_that_receives_events()
    {
        var followed = new FollowedJobs<FollowedJob>(NullLogger.Instance, "job");
        await using var first = Outbox("c1");
        await using var second = Outbox("c2");
        var old = followed.Follow(first, Job, 8, () => new FollowedJob("tenant-a"), () => new TaptNotFoundException("not found"));
        followed.Unfollow(first, Job);

        // The renewal has decided to drop the watch (no followers) but not yet removed it from the map.
        Assert.True(old.TryDrop());
        var watch = followed.Follow(second, Job, 8, () => new FollowedJob("tenant-a"), () => new TaptNotFoundException("not found"));

        Assert.NotSame(old, watch);
        Assert.True(followed.TryGet(Job, out var current));
        Assert.Same(watch, current);   // where the bridge's observer callbacks look
        Assert.Contains(second, watch.Followers);
        Assert.False(old.TryAddFollower(second));
    }

    [Fact]
    public async Task A_watch_with_a_follower_is_kept_and_renewed_and_an_unfollowed_one_is_dropped_and_unsubscribed()
    {
        var followed = new FollowedJobs<FollowedJob>(NullLogger.Instance, "job");
        await using var outbox = Outbox("c1");
        const string other = "job-00000000000000000000000000000008";
        followed.Follow(outbox, Job, 8, () => new FollowedJob("tenant-a"), () => new TaptNotFoundException("not found"));
        followed.Follow(outbox, other, 8, () => new FollowedJob("tenant-a"), () => new TaptNotFoundException("not found"));
        followed.Unfollow(outbox, other);
        var renewed = new List<string>();
        var unsubscribed = new List<string>();

        await followed.RenewAsync((id, _) => { renewed.Add(id); return Task.FromResult(true); },
            (id, _) => { unsubscribed.Add(id); return Task.CompletedTask; }, CancellationToken.None);

        Assert.Equal([Job], renewed);
        Assert.Equal([other], unsubscribed);
        Assert.Equal(1, followed.Count);
        await using var stranger = Outbox("c3", "tenant-b");
        Assert.Throws<TaptNotFoundException>(() =>
            followed.Follow(stranger, Job, 8, () => new FollowedJob("tenant-b"), () => new TaptNotFoundException("not found")));
    }

    [Fact]
    public async Task A_follower_who_came_while_the_renewal_unsubscribed_the_dropped_watch_is_subscribed_again()
    {
        var followed = new FollowedJobs<FollowedJob>(NullLogger.Instance, "job");
        await using var first = Outbox("c1");
        await using var second = Outbox("c2");
        followed.Follow(first, Job, 8, () => new FollowedJob("tenant-a"), () => new TaptNotFoundException("not found"));
        followed.Unfollow(first, Job);
        var calls = new List<string>();

        await followed.RenewAsync((id, _) => { calls.Add("subscribe"); return Task.FromResult(true); },
            (id, _) =>
            {
                calls.Add("unsubscribe");
                // The new follower joins (and subscribes) while the grain is being told to forget the old watch.
                followed.Follow(second, Job, 8, () => new FollowedJob("tenant-a"), () => new TaptNotFoundException("not found"));
                return Task.CompletedTask;
            }, CancellationToken.None);

        Assert.Equal(["unsubscribe", "subscribe"], calls);
        Assert.True(followed.TryGet(Job, out var watch));
        Assert.Contains(second, watch.Followers);
    }

    private static ConnectionOutbox Outbox(string id, string tenant = "tenant-a") =>
        new(id, tenant, "k1", new NoSender(), new LiveOptions(), NullLogger.Instance);

    private sealed class NoSender : ILiveSender
    {
        public Task SendAsync(string connectionId, string method, object payload, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
