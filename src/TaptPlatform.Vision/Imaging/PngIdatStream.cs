using System.Buffers.Binary;

namespace TaptPlatform.Vision.Imaging;

/// <summary>
/// The payloads of a run of consecutive IDAT chunks (already walked and bounds-checked by the scan), read in place
/// as one stream. Valid only while <c>data</c> stays pinned.
/// </summary>
internal sealed unsafe class PngIdatStream(byte* data, int start, long payloadBytes) : Stream
{
    private int _pos = start;
    private int _leftInChunk;
    private long _left = payloadBytes;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        while (_leftInChunk == 0 && _left > 0)
        {
            // The next chunk: length, type, then its payload (the CRC of the previous one was skipped already).
            _leftInChunk = (int)BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(data + _pos, 4));
            _pos += 8;
            if (_leftInChunk == 0) _pos += 4;
        }
        var n = (int)Math.Min(Math.Min(buffer.Length, _leftInChunk), _left);
        if (n <= 0) return 0;
        new ReadOnlySpan<byte>(data + _pos, n).CopyTo(buffer);
        _pos += n;
        _leftInChunk -= n;
        _left -= n;
        if (_leftInChunk == 0) _pos += 4;   // its CRC
        return n;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
