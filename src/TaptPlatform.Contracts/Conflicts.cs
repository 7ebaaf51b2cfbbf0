namespace TaptPlatform.Contracts;

/// <summary>
/// The request conflicts with the current state of something the tenant owns: for example deleting a vocabulary
/// or prompt configuration version that an unfinished job uses.
/// </summary>
[GenerateSerializer]
public sealed class TaptConflictException : Exception
{
    public TaptConflictException() { }
    public TaptConflictException(string message) : base(message) { }
    public TaptConflictException(string message, Exception inner) : base(message, inner) { }
}
