namespace TaptPlatform.Contracts;

/// <summary>
/// The thing asked for does not exist for this tenant. Also what a tenant gets for another tenant's job
/// or vocabulary: the answer never tells whether it exists elsewhere.
/// </summary>
[GenerateSerializer]
public sealed class TaptNotFoundException : Exception
{
    public TaptNotFoundException() { }
    public TaptNotFoundException(string message) : base(message) { }
    public TaptNotFoundException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The request is well-formed but not allowed in the current state (a sealed job, a too-large job, a bad setting).</summary>
[GenerateSerializer]
public sealed class TaptRequestException : Exception
{
    public TaptRequestException() { }
    public TaptRequestException(string message) : base(message) { }
    public TaptRequestException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The tuning engine could not classify an image (model missing, artifact mismatch, engine stopping).</summary>
[GenerateSerializer]
public sealed class TuningFailedException : Exception
{
    public TuningFailedException() { }
    public TuningFailedException(string message) : base(message) { }
    public TuningFailedException(string message, bool transient) : base(message) => Transient = transient;
    public TuningFailedException(string message, Exception inner) : base(message, inner) { }

    /// <summary>True when retrying later (elsewhere) may succeed: the engine was stopping or overloaded.</summary>
    [Id(0)]
    public bool Transient { get; init; }
}

/// <summary>
/// A write would take the tenant past one of its storage limits (count or bytes of vocabularies, prompt configuration
/// versions, keys). Nothing was changed; deleting what the tenant no longer needs makes room.
/// </summary>
[GenerateSerializer]
public sealed class TaptStorageQuotaException : Exception
{
    public TaptStorageQuotaException() { }
    public TaptStorageQuotaException(string message) : base(message) { }
    public TaptStorageQuotaException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Storage did not take a write (or a read). Nothing was changed in memory either, so every caller still sees what
/// storage holds; the same request may succeed later.
/// </summary>
[GenerateSerializer]
public sealed class TaptStorageUnavailableException : Exception
{
    public TaptStorageUnavailableException() { }
    public TaptStorageUnavailableException(string message) : base(message) { }
    public TaptStorageUnavailableException(string message, Exception inner) : base(message, inner) { }
}
