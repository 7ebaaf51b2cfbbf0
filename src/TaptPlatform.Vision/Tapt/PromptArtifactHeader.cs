using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Prompts;

namespace TaptPlatform.Vision.Tapt;

/// <summary>
/// The header of a prompt artifact file read from untrusted bytes, without loading any tensor: the safetensors length
/// prefix and JSON header are bounded, every tensor entry is checked (a known name for the recorded design and depths,
/// a floating-point dtype, a small rank, a byte range that matches its shape, the ranges contiguous from the start of
/// the data) and the TAPT metadata must name a format version this build reads. What passes can be stored and then
/// loaded against its model (<see cref="PromptArtifact.Load"/>), which checks the shapes against the model itself.
/// </summary>
public sealed record PromptArtifactHeader(
    PromptShape Shape,
    string ModelChecksum,
    long HeaderBytes,
    long DataBytes,
    IReadOnlyList<SafeTensorInfo> Tensors)
{
    /// <summary>The largest JSON header accepted (a ViT-L artifact's is a few KiB).</summary>
    public const int MaxHeaderBytes = 1 << 20;

    /// <summary>The most tensors an artifact may hold (prompts and statistics of a 48-layer model are under 300).</summary>
    public const int MaxTensors = 1024;

    private const int MaxDepth = 64;
    private const int MaxTokens = 64;
    private const long MaxDimension = 1 << 20;

    /// <summary>The length of the whole file: the 8-byte prefix, the header and the data.</summary>
    public long TotalBytes => 8 + HeaderBytes + DataBytes;

    public bool HasCleanPrompts => Tensors.Any(t => t.Name.StartsWith("prompts.clean.", StringComparison.Ordinal));

    public bool HasStatistics => Tensors.Any(t => t.Name.StartsWith("stats.", StringComparison.Ordinal));

    /// <summary>
    /// Reads the 8-byte prefix and the header from <paramref name="stream"/> (nothing more) and checks them; returns the
    /// bytes read so the caller can store them ahead of the rest. <see cref="InvalidDataException"/> names what is wrong.
    /// </summary>
    public static async Task<(PromptArtifactHeader Header, byte[] Head)> ReadAsync(Stream stream, CancellationToken ct = default)
    {
        var prefix = new byte[8];
        if (await ReadFullyAsync(stream, prefix, ct) != 8) throw new InvalidDataException("too short to be a safetensors file (no 8-byte header length)");
        var length = BinaryPrimitives.ReadInt64LittleEndian(prefix);
        if (length is < 2 or > MaxHeaderBytes)
            throw new InvalidDataException($"the safetensors header length is {length} bytes; a prompt artifact's is 2..{MaxHeaderBytes}");
        var head = new byte[8 + length];
        prefix.CopyTo(head, 0);
        if (await ReadFullyAsync(stream, head.AsMemory(8), ct) != length) throw new InvalidDataException($"the file ends inside its {length}-byte header");
        return (Parse(head), head);
    }

    /// <summary>Reads and checks the header of a file (as <see cref="ReadAsync"/> does for a stream).</summary>
    public static PromptArtifactHeader ReadFile(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> prefix = stackalloc byte[8];
        if (file.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) != 8) throw new InvalidDataException("too short to be a safetensors file (no 8-byte header length)");
        var length = BinaryPrimitives.ReadInt64LittleEndian(prefix);
        if (length is < 2 or > MaxHeaderBytes || length > file.Length - 8)
            throw new InvalidDataException($"the safetensors header length is {length} bytes; a prompt artifact's is 2..{MaxHeaderBytes} and within the file");
        var head = new byte[8 + length];
        prefix.CopyTo(head);
        file.ReadExactly(head.AsSpan(8));
        return Parse(head);
    }

    /// <summary>Checks a prefix-and-header (<c>8 + header length</c> bytes).</summary>
    public static PromptArtifactHeader Parse(ReadOnlySpan<byte> head)
    {
        if (head.Length < 8) throw new InvalidDataException("too short to be a safetensors file");
        var length = BinaryPrimitives.ReadInt64LittleEndian(head);
        if (length is < 2 or > MaxHeaderBytes || length != head.Length - 8) throw new InvalidDataException($"invalid safetensors header length {length}");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(Encoding.UTF8.GetString(head[8..]), documentOptions: new JsonDocumentOptions { MaxDepth = 16 }) as JsonObject
                ?? throw new InvalidDataException("the safetensors header is not a JSON object");
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new InvalidDataException("the safetensors header is not valid JSON", e);
        }
        var (shape, checksum) = ReadTaptMetadata(root["__metadata__"]);
        var expected = ExpectedNames(shape);
        var tensors = new List<SafeTensorInfo>();
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__") continue;
            if (tensors.Count == MaxTensors) throw new InvalidDataException($"more than {MaxTensors} tensors");
            if (!expected.Contains(name)) throw new InvalidDataException($"unexpected tensor '{Short(name)}' for a {shape.Design} artifact of depth {shape.VisionDepth}/{shape.TextDepth}");
            tensors.Add(ReadTensor(name, node));
        }
        if (!tensors.Any(t => t.Name.StartsWith("prompts.adv.", StringComparison.Ordinal))) throw new InvalidDataException("no adversarial prompts (prompts.adv.*)");
        foreach (var side in new[] { "adv", "clean" })
        {
            var present = tensors.Count(t => t.Name.StartsWith($"prompts.{side}.", StringComparison.Ordinal));
            var needed = expected.Count(n => n.StartsWith($"prompts.{side}.", StringComparison.Ordinal));
            if (present != 0 && present != needed) throw new InvalidDataException($"prompts.{side} has {present} of the {needed} tensors a {shape.Design} artifact of this depth needs");
        }
        foreach (var stats in new[] { "adv", "clean", "attacked" })
        {
            var mean = tensors.FirstOrDefault(t => t.Name == $"stats.{stats}.mean");
            var variance = tensors.FirstOrDefault(t => t.Name == $"stats.{stats}.var");
            if ((mean is null) != (variance is null)) throw new InvalidDataException($"statistics '{stats}' need both a mean and a variance");
            if (mean is not null && (mean.Shape.Length != 3 || !mean.Shape.SequenceEqual(variance!.Shape)))
                throw new InvalidDataException($"statistics '{stats}' must be a mean and a variance of one [layers, tokens, width] shape");
        }
        return new PromptArtifactHeader(shape, checksum, length, CheckContiguous(tensors), tensors);
    }

    private static (PromptShape Shape, string Checksum) ReadTaptMetadata(JsonNode? metadata)
    {
        if (metadata is not JsonObject m || m["tapt"] is not JsonValue taptValue || !taptValue.TryGetValue<string>(out var taptText))
            throw new InvalidDataException("not a TAPT prompt artifact (no 'tapt' entry in the safetensors metadata)");
        try
        {
            var h = JsonNode.Parse(taptText, documentOptions: new JsonDocumentOptions { MaxDepth = 32 }) as JsonObject
                ?? throw new InvalidDataException("the 'tapt' metadata is not a JSON object");
            if (h["format"]?.GetValue<string>() != "tapt-prompts") throw new InvalidDataException("the 'tapt' metadata does not say format \"tapt-prompts\"");
            var version = h["format_version"]?.GetValue<int>();
            if (version != PromptArtifact.FormatVersion) throw new InvalidDataException($"artifact format version {version?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "missing"}; this build reads version {PromptArtifact.FormatVersion}");
            var design = PromptShape.ParseDesign(h["design"]?.GetValue<string>() ?? throw new InvalidDataException("the 'tapt' metadata has no design"));
            int Bounded(string key, int min, int max) => h[key]?.GetValue<int>() is int v && v >= min && v <= max ? v
                : throw new InvalidDataException($"'{key}' must be an integer in {min}..{max}");
            var shape = new PromptShape(design, Bounded("tokens_per_layer", 1, MaxTokens), Bounded("vision_depth", 1, MaxDepth),
                design == PromptDesign.V ? Bounded("text_depth", 0, 0) : Bounded("text_depth", 1, MaxDepth));
            var checksum = h["model_checksum"]?.GetValue<string>();
            if (checksum is not { Length: >= 8 and <= 160 } || !checksum.All(c => char.IsAsciiLetterOrDigit(c) || c is ':' or '-' or '_' or '.'))
                throw new InvalidDataException("'model_checksum' must be 8-160 letters, digits, ':', '-', '_' and '.'");
            return (shape, checksum);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"the 'tapt' metadata is damaged ({e.Message})", e);
        }
    }

    /// <summary>Every tensor name an artifact of this shape may hold (the prompt sets' state names under their prefixes, and the statistics).</summary>
    private static HashSet<string> ExpectedNames(PromptShape shape)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var side in new[] { "adv", "clean" })
        {
            for (var l = 0; l < shape.TextDepth; l++) names.Add($"prompts.{side}.text.{l}");
            for (var l = 0; l < shape.VisionDepth; l++)
            {
                if (shape.Design == PromptDesign.VLJ)
                {
                    names.Add($"prompts.{side}.proj.{l}.weight");
                    names.Add($"prompts.{side}.proj.{l}.bias");
                }
                else names.Add($"prompts.{side}.visual.{l}");
            }
        }
        foreach (var s in new[] { "adv", "clean", "attacked" })
        {
            names.Add($"stats.{s}.mean");
            names.Add($"stats.{s}.var");
        }
        return names;
    }

    private static SafeTensorInfo ReadTensor(string name, JsonNode? node)
    {
        try
        {
            var o = node as JsonObject ?? throw new InvalidDataException("not an object");
            var dtype = o["dtype"]?.GetValue<string>() ?? throw new InvalidDataException("no dtype");
            if (dtype is not ("F32" or "F16" or "BF16" or "F64")) throw new InvalidDataException($"dtype {Short(dtype)}; prompt artifacts hold F32, F16, BF16 or F64 tensors");
            var shape = (o["shape"] as JsonArray ?? throw new InvalidDataException("no shape")).Select(d => d!.GetValue<long>()).ToArray();
            if (shape.Length is < 1 or > 3 || shape.Any(d => d is < 1 or > MaxDimension)) throw new InvalidDataException($"shape [{string.Join(", ", shape)}] is not a 1-3 dimensional shape of 1..{MaxDimension} per dimension");
            var offsets = (o["data_offsets"] as JsonArray ?? throw new InvalidDataException("no data_offsets")).Select(d => d!.GetValue<long>()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0]) throw new InvalidDataException("data_offsets must be [begin, end] with 0 <= begin <= end");
            var bytes = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * SafeTensorsFile.ElementSize(dtype));
            if (bytes != offsets[1] - offsets[0]) throw new InvalidDataException($"{offsets[1] - offsets[0]} bytes do not hold a {dtype} tensor of shape [{string.Join(", ", shape)}]");
            return new SafeTensorInfo(name, dtype, shape, offsets[0], offsets[1]);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or NullReferenceException or InvalidDataException)
        {
            throw new InvalidDataException($"tensor '{Short(name)}': {e.Message}", e);
        }
    }

    /// <summary>The data's length: the tensors' byte ranges must follow one another from 0 (no gaps, no overlaps).</summary>
    private static long CheckContiguous(List<SafeTensorInfo> tensors)
    {
        long end = 0;
        foreach (var t in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (t.Begin != end) throw new InvalidDataException($"tensor '{t.Name}' starts at byte {t.Begin} of the data, not at {end}: the byte ranges overlap or leave gaps");
            end = t.End;
        }
        return end;
    }

    private static string Short(string s) => s.Length <= 80 ? s : s[..80] + "…";

    private static async Task<int> ReadFullyAsync(Stream stream, Memory<byte> buffer, CancellationToken ct)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer[total..], ct);
            if (n == 0) break;
            total += n;
        }
        return total;
    }
}
