using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Vision.Tests.Tapt;

public sealed class PromptArtifactHeaderTests : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"tapt-header-{Guid.NewGuid():N}.safetensors");

    public PromptArtifactHeaderTests()
    {
        using var tiny = new TinyTapt();
        tiny.Artifact.Save(_file);
    }

    public void Dispose() => File.Delete(_file);

    private byte[] Edited(Action<JsonObject, JsonObject> edit)
    {
        var file = File.ReadAllBytes(_file);
        var length = (int)BinaryPrimitives.ReadInt64LittleEndian(file);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(file, 8, length))!.AsObject();
        var tapt = JsonNode.Parse(header["__metadata__"]!["tapt"]!.GetValue<string>())!.AsObject();
        edit(header, tapt);
        header["__metadata__"]!["tapt"] = tapt.ToJsonString();
        var bytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        var head = new byte[8 + bytes.Length];
        BinaryPrimitives.WriteInt64LittleEndian(head, bytes.Length);
        bytes.CopyTo(head, 8);
        return head;
    }

    [Fact]
    public async Task A_saved_artifact_passes_and_its_header_describes_the_file()
    {
        using var stream = File.OpenRead(_file);
        var (header, head) = await PromptArtifactHeader.ReadAsync(stream);
        Assert.Equal(new FileInfo(_file).Length, header.TotalBytes);
        Assert.Equal(8 + header.HeaderBytes, head.Length);
        Assert.Equal(stream.Position, (long)head.Length);          // nothing past the header was read
        Assert.True(header.HasCleanPrompts);
        Assert.True(header.HasStatistics);
        Assert.Equal(header, PromptArtifactHeader.ReadFile(_file) with { Tensors = header.Tensors });
    }

    [Theory]
    [InlineData("dtype", "dtype I64")]
    [InlineData("rank", "1-3 dimensional")]
    [InlineData("extra", "unexpected tensor")]
    [InlineData("missing-clean", "prompts.clean has")]
    [InlineData("stats-shape", "one [layers, tokens, width] shape")]
    [InlineData("gap", "overlap or leave gaps")]
    [InlineData("design", "unknown prompt design")]
    [InlineData("checksum", "model_checksum")]
    [InlineData("v-with-text", "text_depth")]
    public void A_damaged_header_is_refused_naming_what_is_wrong(string damage, string reason)
    {
        var head = Edited((h, t) =>
        {
            switch (damage)
            {
                case "dtype": h["prompts.adv.text.0"]!["dtype"] = "I64"; break;
                case "rank": h["prompts.adv.text.0"]!["shape"] = new JsonArray(1, 1, 1, 1, 1); break;
                case "extra": h["prompts.adv.visual.99"] = h["prompts.adv.visual.0"]!.DeepClone(); break;
                case "missing-clean": h.Remove("prompts.clean.text.0"); break;
                case "stats-shape": h["stats.adv.var"]!["shape"] = new JsonArray(h["stats.adv.mean"]!["shape"]!.AsArray().Select(d => (JsonNode)d!.GetValue<long>()).Reverse().ToArray()); break;
                case "gap":
                    var offsets = h["stats.adv.mean"]!["data_offsets"]!.AsArray().Select(o => o!.GetValue<long>() + 4).ToArray();
                    h["stats.adv.mean"]!["data_offsets"] = new JsonArray(offsets[0], offsets[1]);
                    break;
                case "design": t["design"] = "XL"; break;
                case "checksum": t["model_checksum"] = "../../etc"; break;
                case "v-with-text": t["design"] = "V"; break;
            }
        });
        var e = Assert.Throws<InvalidDataException>(() => PromptArtifactHeader.Parse(head));
        Assert.Contains(reason, e.Message + " " + e.InnerException?.Message);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(0L)]
    [InlineData(PromptArtifactHeader.MaxHeaderBytes + 1L)]
    [InlineData(long.MaxValue)]
    public async Task A_header_length_out_of_bounds_is_refused_before_anything_is_allocated(long length)
    {
        var bytes = new byte[64];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, length);
        using var stream = new MemoryStream(bytes);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => PromptArtifactHeader.ReadAsync(stream));
        Assert.Contains("header length", e.Message);
    }
}
