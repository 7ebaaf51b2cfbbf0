using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TaptPlatform.Grains.Tuning;

namespace TaptPlatform.Grains.Tests;

/// <summary>Options are checked one way: their own ranges, by the options system, with the setting's name in the message.</summary>
public sealed class OptionsValidationTests
{
    [Fact]
    public void Defaults_pass() =>
        Assert.True(new SelfValidatingOptions<JobOptions>().Validate(null, new JobOptions()).Succeeded);

    [Fact]
    public void A_slot_lease_beyond_an_hour_is_refused_by_name()
    {
        var result = new SelfValidatingOptions<JobOptions>().Validate(null, new JobOptions { SlotLease = TimeSpan.FromHours(2) });
        Assert.True(result.Failed);
        Assert.Contains("Tapt:Jobs:SlotLease", result.FailureMessage);
    }

    [Fact]
    public void A_bad_engine_setting_fails_when_the_options_are_read()
    {
        var services = new ServiceCollection();
        services.AddOptions<TuningEngineOptions>().Configure(o => o.Threads = 0).ValidatedOnStart();
        using var provider = services.BuildServiceProvider();
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<TuningEngineOptions>>().Value);
        Assert.Contains("Tapt:Engine:Threads", e.Message);
    }

    [Theory]
    [InlineData("fp16")]
    [InlineData("")]
    public void An_unknown_engine_precision_is_refused_by_name(string precision)
    {
        var result = new SelfValidatingOptions<TuningEngineOptions>().Validate(null, new TuningEngineOptions { Precision = precision });
        Assert.True(result.Failed);
        Assert.Contains("Tapt:Engine:Precision", result.FailureMessage);
    }
}
