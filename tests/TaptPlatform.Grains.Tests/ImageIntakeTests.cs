using TaptPlatform.Contracts;
using TaptPlatform.Grains.JobParts;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>The upload receipt says, per offered image and in order, what became of it.</summary>
public sealed class ImageIntakeTests
{
    [Fact]
    public void The_receipt_names_every_offered_part_in_order_with_its_index_or_its_reason()
    {
        var png = TestModels.FashionPng(0);
        (string?, byte[]?)[] offered =
        [
            ("a.png", png),
            ("empty.png", []),
            ("text.png", "not an image"u8.ToArray()),
            ("  b\u0007.png \n", png),
            (null, png),
            ("c.png", png),
        ];
        var (accepted, parts) = ImageIntake.Examine(offered, firstIndex: 10, refuse: p => p == 5 ? "UnknownLabel: no" : null);

        Assert.Equal(["a.png", "empty.png", "text.png", "b.png", "image-12", "c.png"], parts.Select(p => p.Name));
        Assert.Equal([10, null, null, 11, 12, null], parts.Select(p => p.Index));
        Assert.StartsWith("Empty", parts[1].Rejection);
        Assert.StartsWith("UnknownFormat", parts[2].Rejection);
        Assert.Equal("UnknownLabel: no", parts[5].Rejection);
        Assert.Equal([0, 3, 4], accepted.Select(a => a.Position));
        Assert.All(accepted, a => Assert.Equal("PNG", a.Info.Format));

        var receipt = AddImagesReceipt.Of(parts, 13);
        Assert.Equal([10, 11, 12], receipt.AcceptedIndices.AsEnumerable());
        Assert.Equal(["empty.png", "text.png", "c.png"], receipt.Rejected.Select(r => r.Name));
    }

    [Theory]
    [InlineData("x\u0000y\u001f.png", 0, "xy.png")]
    [InlineData("   ", 7, "image-7")]
    [InlineData(null, 3, "image-3")]
    public void Names_are_cleaned_by_one_rule(string? name, int index, string expected) =>
        Assert.Equal(expected, ImageIntake.CleanName(name, index));

    [Fact]
    public void Long_names_are_cut_at_256_characters() =>
        Assert.Equal(256, ImageIntake.CleanName(new string('n', 300), 0).Length);
}
