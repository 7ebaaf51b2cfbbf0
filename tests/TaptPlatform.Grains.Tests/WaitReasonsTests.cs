using Azure;

namespace TaptPlatform.Grains.Tests;

public sealed class WaitReasonsTests
{
    [Fact]
    public void A_storage_failure_is_told_as_waiting_for_storage_and_anything_else_as_waiting_for_an_accelerator_silo()
    {
        // What the Azure SDK throws when Azurite is down: its retries end in an AggregateException of the attempts.
        var down = new AggregateException(new RequestFailedException("connection refused", new HttpRequestException("refused")));
        Assert.Equal("waiting for storage (AggregateException)", WaitReasons.For(down));
        Assert.Equal("waiting for storage (RequestFailedException)", WaitReasons.For(new RequestFailedException(503, "busy")));
        Assert.Equal("waiting for an accelerator silo (SiloUnavailableException)", WaitReasons.For(new SiloUnavailableException()));
        Assert.Equal("waiting for an accelerator silo (TimeoutException)", WaitReasons.For(new TimeoutException()));
    }
}
