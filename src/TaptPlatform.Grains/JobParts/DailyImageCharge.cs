using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// How a job that knows its whole work when it starts (an evaluation, a training run) is charged against the tenant's
/// daily images: once, before the start is recorded; a start that cannot be saved gives the images back.
/// </summary>
public static class DailyImageCharge
{
    /// <summary>Reserves <paramref name="images"/> (or throws <see cref="TaptQuotaException"/>), applies <paramref name="start"/> and saves it.</summary>
    public static async Task ChargeThenSaveAsync(IGrainFactory grains, string tenantId, int images, int dailyLimit, Action start, Func<Task> saveAsync)
    {
        var quota = grains.GetGrain<ITenantQuotaGrain>(tenantId);
        var decision = await quota.ReserveImagesAsync(images, dailyLimit);
        if (!decision.Granted) throw new TaptQuotaException(QuotaKind.ImagesPerDay, decision);
        start();
        try
        {
            await saveAsync();
        }
        catch
        {
            await quota.ReleaseImagesAsync(images);
            throw;
        }
    }
}
