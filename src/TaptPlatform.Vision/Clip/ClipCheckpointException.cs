namespace TaptPlatform.Vision.Clip;

/// <summary>A checkpoint directory that cannot be loaded: missing files, bad JSON, missing/extra/mis-shaped tensors.</summary>
public sealed class ClipCheckpointException : Exception
{
    public ClipCheckpointException(string message) : base(message) { }
    public ClipCheckpointException(string message, Exception inner) : base(message, inner) { }
}
