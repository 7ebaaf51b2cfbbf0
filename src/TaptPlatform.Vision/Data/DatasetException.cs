namespace TaptPlatform.Vision.Data;

/// <summary>A data set that is missing or malformed: the message says which file and what to do.</summary>
public sealed class DatasetException : Exception
{
    public DatasetException(string message) : base(message) { }
    public DatasetException(string message, Exception inner) : base(message, inner) { }
}
