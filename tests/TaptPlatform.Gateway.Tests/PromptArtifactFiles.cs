using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>The tiny model's default prompt artifact as bytes, and variants of it (damaged or merely different) for upload tests.</summary>
public static class PromptArtifactFiles
{
    public static byte[] TinyDefault() => File.ReadAllBytes(Path.Combine(TestModels.TinyDirectory, "tapt-prompts.safetensors"));

    /// <summary>The default artifact with its safetensors header (and the TAPT metadata inside it) changed by <paramref name="edit"/>.</summary>
    public static byte[] WithHeader(byte[] file, Action<JsonObject, JsonObject> edit)
    {
        var length = (int)BinaryPrimitives.ReadInt64LittleEndian(file);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(file, 8, length))!.AsObject();
        var metadata = header["__metadata__"]!.AsObject();
        var tapt = JsonNode.Parse(metadata["tapt"]!.GetValue<string>())!.AsObject();
        edit(header, tapt);
        metadata["tapt"] = tapt.ToJsonString();
        var bytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        var result = new byte[8 + bytes.Length + file.Length - 8 - length];
        BinaryPrimitives.WriteInt64LittleEndian(result, bytes.Length);
        bytes.CopyTo(result, 8);
        file.AsSpan(8 + length).CopyTo(result.AsSpan(8 + bytes.Length));
        return result;
    }

    /// <summary>A valid artifact with other prompt values: every float of the first tensor's data nudged.</summary>
    public static byte[] Different(byte[] file)
    {
        var copy = (byte[])file.Clone();
        var length = (int)BinaryPrimitives.ReadInt64LittleEndian(copy);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(copy, 8, length))!.AsObject();
        var adv = header["prompts.adv.visual.0"]!.AsObject();
        var begin = 8 + length + (int)adv["data_offsets"]![0]!.GetValue<long>();
        var end = 8 + length + (int)adv["data_offsets"]![1]!.GetValue<long>();
        for (var i = begin; i < end; i += 4)
        {
            var v = BinaryPrimitives.ReadSingleLittleEndian(copy.AsSpan(i));
            BinaryPrimitives.WriteSingleLittleEndian(copy.AsSpan(i), v * 0.5f + 0.01f);
        }
        return copy;
    }
}
