using TaptPlatform.Grains.Evaluation;

namespace TaptPlatform.Grains.Tests;

/// <summary>The executors' queue serves tenants in turn: a tenant that queued one unit waits for at most one unit of each other tenant.</summary>
public sealed class FairQueueTests
{
    [Fact]
    public void Keys_are_served_round_robin_whatever_each_queued()
    {
        var queue = new FairQueue<string>(100);
        for (var i = 0; i < 10; i++) Assert.True(queue.TryAdd("a", $"a{i}"));
        Assert.True(queue.TryAdd("b", "b0"));
        Assert.True(queue.TryAdd("c", "c0"));
        Assert.True(queue.TryAdd("b", "b1"));

        var order = new List<string>();
        queue.CompleteAdding();
        while (queue.TryTake(out var item, out _)) order.Add(item);

        Assert.Equal(["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"], order);
        Assert.False(queue.TryAdd("a", "late"));
    }

    [Fact]
    public void A_full_queue_refuses_and_takes_again_once_drained()
    {
        var queue = new FairQueue<int>(2);
        Assert.True(queue.TryAdd("a", 1));
        Assert.True(queue.TryAdd("b", 2));
        Assert.False(queue.TryAdd("c", 3));
        Assert.True(queue.TryTake(out var first, out var key));
        Assert.Equal((1, "a"), (first, key));
        Assert.True(queue.TryAdd("c", 3));
        Assert.Equal(2, queue.Count);
        // A continuation of work already taken is admitted past the bound; nothing is once the queue completes.
        Assert.False(queue.TryAdd("a", 4));
        Assert.True(queue.TryAdd("a", 4, ignoreCapacity: true));
        Assert.Equal(3, queue.Count);
        queue.CompleteAdding();
        Assert.False(queue.TryAdd("a", 5, ignoreCapacity: true));
    }

    [Fact]
    public async Task A_taker_waits_for_work_and_stops_when_the_queue_completes()
    {
        var queue = new FairQueue<int>(4);
        var taken = new List<int>();
        var taker = Task.Run(() => { while (queue.TryTake(out var i, out _)) taken.Add(i); });
        queue.TryAdd("a", 1);
        queue.TryAdd("b", 2);
        queue.CompleteAdding();
        await taker.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal([1, 2], taken.Order());
    }
}
