using System.Net;
using Microsoft.Extensions.Configuration;

namespace TaptPlatform.Silo.Hosting;

/// <summary>
/// Which cluster a process joins and where a silo listens (configuration section <c>Orleans</c>): read once, checked
/// with messages that name the setting, for the silo host and the gateway alike.
/// </summary>
public sealed class TaptClusterOptions
{
    public const string Section = "Orleans";

    public string ClusterId { get; set; } = "tapt";
    public string ServiceId { get; set; } = "tapt-platform";

    /// <summary>The address other silos and clients reach this silo at (in a container: its own address).</summary>
    public string AdvertisedIP { get; set; } = "127.0.0.1";

    public int SiloPort { get; set; } = 11111;
    public int GatewayPort { get; set; } = 30000;

    /// <summary>Reads and checks the section; throws <see cref="InvalidOperationException"/> naming the bad setting.</summary>
    public static TaptClusterOptions Read(IConfiguration configuration)
    {
        var o = new TaptClusterOptions();
        try
        {
            configuration.GetSection(Section).Bind(o);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"{Section}: {e.Message}", e);
        }
        if (string.IsNullOrWhiteSpace(o.ClusterId)) throw new InvalidOperationException($"{Section}:ClusterId must not be empty");
        if (string.IsNullOrWhiteSpace(o.ServiceId)) throw new InvalidOperationException($"{Section}:ServiceId must not be empty");
        if (!IPAddress.TryParse(o.AdvertisedIP, out _)) throw new InvalidOperationException($"{Section}:AdvertisedIP '{o.AdvertisedIP}' is not an IP address");
        foreach (var (name, port) in new[] { ("SiloPort", o.SiloPort), ("GatewayPort", o.GatewayPort) })
            if (port is < 1 or > 65535) throw new InvalidOperationException($"{Section}:{name} must be a port in 1..65535, got {port}");
        return o;
    }
}
