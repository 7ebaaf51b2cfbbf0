using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tests;

/// <summary>Identifiers mean what their patterns say, to the very end: no trailing newline or other control character slips through.</summary>
public sealed class IdentifierTests
{
    [Theory]
    [InlineData("demo\n")]
    [InlineData("demo\r\n")]
    [InlineData("demo\0")]
    [InlineData("de\tmo")]
    [InlineData("\ndemo")]
    [InlineData("demo ")]
    public void Tenant_ids_with_control_characters_or_spaces_are_refused(string id)
    {
        Assert.False(Identifiers.IsValidTenantId(id));
        Assert.Throws<ArgumentException>(() => Identifiers.RequireTenantId(id));
    }

    [Theory]
    [InlineData("job-0123456789\n")]
    [InlineData("job-0123456789\u2028")]
    public void Job_ids_with_a_trailing_line_break_are_refused(string id) => Assert.False(Identifiers.IsValidJobId(id));

    [Theory]
    [InlineData("fashion\n")]
    [InlineData("fash\nion")]
    public void Names_with_a_line_break_are_refused(string name) => Assert.False(Identifiers.IsValidName(name));

    [Fact]
    public void Well_formed_identifiers_still_pass()
    {
        Assert.True(Identifiers.IsValidTenantId("demo"));
        Assert.True(Identifiers.IsValidJobId(Identifiers.NewJobId()));
        Assert.True(Identifiers.IsValidName("fashion_v2.1-a"));
    }
}
