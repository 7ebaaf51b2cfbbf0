using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Checkpoints;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// Reads and writes the safetensors format (8-byte little-endian header length, JSON header,
/// raw little-endian data). Every header field is validated before any data is read, so a corrupt
/// or hostile file fails with a message instead of a huge allocation.
/// </summary>
public sealed class SafeTensorsFile
{
    private const long MaxHeaderBytes = 100 * 1024 * 1024;
    private readonly string _path;
    private readonly long _dataStart;

    private SafeTensorsFile(string path, long dataStart, IReadOnlyDictionary<string, SafeTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        _path = path;
        _dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"safetensors file not found: {path}");
        using var fs = File.OpenRead(path);
        Span<byte> lenBytes = stackalloc byte[8];
        if (fs.Read(lenBytes) != 8) throw new InvalidDataException($"{path}: too short to be a safetensors file");
        var headerLen = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLen <= 0 || headerLen > MaxHeaderBytes || headerLen > fs.Length - 8)
            throw new InvalidDataException($"{path}: invalid safetensors header length {headerLen}");
        var header = new byte[headerLen];
        fs.ReadExactly(header);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(Encoding.UTF8.GetString(header)) as JsonObject ?? throw new InvalidDataException("header is not an object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: safetensors header is not valid JSON ({e.Message})", e);
        }
        var dataStart = 8 + headerLen;
        var dataLength = fs.Length - dataStart;
        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject m)
                    foreach (var (k, v) in m) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            try
            {
                var o = (JsonObject)node!;
                var dtype = o["dtype"]!.GetValue<string>();
                var shape = o["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var offsets = o["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var count = shape.Aggregate(1L, (a, b) => checked(a * b));
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength || shape.Any(d => d < 0))
                    throw new InvalidDataException("offsets out of range");
                if (checked(count * ElementSize(dtype)) != offsets[1] - offsets[0])
                    throw new InvalidDataException($"byte length {offsets[1] - offsets[0]} does not match {dtype} shape [{string.Join(", ", shape)}]");
                tensors[name] = new SafeTensorInfo(name, dtype, shape, offsets[0], offsets[1]);
            }
            catch (Exception e) when (e is InvalidCastException or NullReferenceException or InvalidOperationException or OverflowException or FormatException or InvalidDataException)
            {
                throw new InvalidDataException($"{path}: bad header entry for tensor '{name}' ({e.Message})", e);
            }
        }
        return new SafeTensorsFile(path, dataStart, tensors, metadata);
    }

    /// <summary>Reads one tensor as float32 on the CPU (F16, BF16 and F64 are converted).</summary>
    public Tensor ReadFloat32(string name)
    {
        var info = Tensors[name];
        var bytes = new byte[info.End - info.Begin];
        using (var fs = File.OpenRead(_path))
        {
            fs.Seek(_dataStart + info.Begin, SeekOrigin.Begin);
            fs.ReadExactly(bytes);
        }
        float[] values = info.DType switch
        {
            "F32" => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
            "F16" => MemoryMarshal.Cast<byte, Half>(bytes).ToArray().Select(h => (float)h).ToArray(),
            "BF16" => MemoryMarshal.Cast<byte, ushort>(bytes).ToArray().Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray(),
            "F64" => MemoryMarshal.Cast<byte, double>(bytes).ToArray().Select(d => (float)d).ToArray(),
            _ => throw new InvalidDataException($"tensor '{name}' has dtype {info.DType}; expected a floating-point type"),
        };
        return tensor(values, info.Shape);
    }

    /// <summary>Reads one integer tensor (I64/I32) as int64.</summary>
    public long[] ReadInt64(string name)
    {
        var info = Tensors[name];
        var bytes = new byte[info.End - info.Begin];
        using var fs = File.OpenRead(_path);
        fs.Seek(_dataStart + info.Begin, SeekOrigin.Begin);
        fs.ReadExactly(bytes);
        return info.DType switch
        {
            "I64" => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            "I32" => MemoryMarshal.Cast<byte, int>(bytes).ToArray().Select(i => (long)i).ToArray(),
            _ => throw new InvalidDataException($"tensor '{name}' has dtype {info.DType}; expected an integer type"),
        };
    }

    public static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => throw new InvalidDataException($"unknown safetensors dtype '{dtype}'"),
    };

    /// <summary>Writes float32 tensors (sorted by name, as the reference implementation does) with string metadata.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var m = new JsonObject();
            foreach (var (k, v) in metadata) m[k] = v;
            header["__metadata__"] = m;
        }
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var name in tensors.Keys.Order(StringComparer.Ordinal))
        {
            using var t = tensors[name].detach().to(ScalarType.Float32).cpu().contiguous();
            var data = t.data<float>().ToArray();
            var bytes = MemoryMarshal.AsBytes(data.AsSpan()).ToArray();
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes.Length),
            };
            offset += bytes.Length;
            blobs.Add(bytes);
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        // Pad the header with spaces to an 8-byte boundary, as the reference writer does.
        var padded = (headerBytes.Length + 7) / 8 * 8;
        var tmp = path + ".tmp";
        using (var fs = File.Create(tmp))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(len, padded);
            fs.Write(len);
            fs.Write(headerBytes);
            for (var i = headerBytes.Length; i < padded; i++) fs.WriteByte((byte)' ');
            foreach (var b in blobs) fs.Write(b);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
