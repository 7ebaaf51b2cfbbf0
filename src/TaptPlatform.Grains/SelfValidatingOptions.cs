using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace TaptPlatform.Grains;

/// <summary>An options type that knows its own ranges: <see cref="Validate"/> throws <see cref="ArgumentException"/> naming the setting.</summary>
public interface ISelfValidatingOptions
{
    void Validate();
}

/// <summary>
/// The one way options are checked: each type's own <see cref="ISelfValidatingOptions.Validate"/>, run by the options
/// system when the host starts (<c>ValidateOnStart</c>), so a bad setting stops the process with its name instead of
/// failing the first call that reads it.
/// </summary>
public sealed class SelfValidatingOptions<T> : IValidateOptions<T> where T : class, ISelfValidatingOptions
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException e)
        {
            return ValidateOptionsResult.Fail(e.Message);
        }
    }
}

public static class SelfValidatingOptionsExtensions
{
    /// <summary>Registers <typeparamref name="T"/>'s own validation and runs it when the host starts.</summary>
    public static OptionsBuilder<T> ValidatedOnStart<T>(this OptionsBuilder<T> builder) where T : class, ISelfValidatingOptions
    {
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<T>, SelfValidatingOptions<T>>());
        return builder.ValidateOnStart();
    }
}
