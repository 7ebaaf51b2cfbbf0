using Microsoft.Extensions.Options;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Grains.Tests;

public sealed class InputMemoryTests
{
    [Fact]
    public void Reservations_are_refused_past_the_budget_and_released_bytes_can_be_reserved_again()
    {
        var memory = new InputMemory(Options.Create(new JobOptions { InputMemoryBytes = 1000 }));

        Assert.True(memory.TryReserve(600));
        Assert.False(memory.TryReserve(401));
        Assert.True(memory.TryReserve(400));
        Assert.Equal(1000, memory.Used);
        memory.Release(600);
        Assert.True(memory.TryReserve(600));
        Assert.False(memory.TryReserve(1));
    }

    [Fact]
    public void A_zero_budget_keeps_nothing_in_memory()
    {
        var memory = new InputMemory(Options.Create(new JobOptions { InputMemoryBytes = 0 }));

        Assert.False(memory.TryReserve(1));
        Assert.Equal(0, memory.Used);
    }
}
