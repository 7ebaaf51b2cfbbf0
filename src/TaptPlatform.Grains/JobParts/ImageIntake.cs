using System.Collections.Immutable;
using System.Globalization;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Grains.JobParts;

/// <summary>An offered image that passed the checks, with the index it gets and what was learnt of it.</summary>
public sealed record IntakeImage(int Position, int Index, string Name, byte[] Content, ImageInfo Info);

/// <summary>
/// The intake of uploaded images, shared by jobs and evaluations: one rule for names, the untrusted-image checks
/// (<see cref="ImageProbe"/>) before anything is stored, the blob writes, and a receipt that says per offered image,
/// in order, what became of it. Stored before acknowledged: the caller records the accepted images in its state only
/// after <see cref="StoreAsync"/> returned.
/// </summary>
public static class ImageIntake
{
    public const int MaxNameLength = 256;

    /// <summary>The stored name of an image: control characters removed, trimmed, at most 256 characters; <c>image-N</c> when nothing is left.</summary>
    public static string CleanName(string? name, int index)
    {
        var n = new string((name ?? "").Where(c => !char.IsControl(c)).ToArray()).Trim();
        if (n.Length > MaxNameLength) n = n[..MaxNameLength];
        return n.Length == 0 ? "image-" + index.ToString(CultureInfo.InvariantCulture) : n;
    }

    /// <summary>
    /// Checks the offered images in order; accepted ones are numbered from <paramref name="firstIndex"/>.
    /// <paramref name="refuse"/> adds a caller's own check (an evaluation's labels): a reason, or null to accept.
    /// <paramref name="unreadable"/> gives the reason an image's bytes could not be had (a staged image that is
    /// missing or not what was uploaded), checked first.
    /// </summary>
    public static (List<IntakeImage> Accepted, ImmutableArray<OfferedImage> Parts) Examine(
        IReadOnlyList<(string? Name, byte[]? Content)> offered, int firstIndex, Func<int, string?>? refuse = null, Func<int, string?>? unreadable = null)
    {
        var accepted = new List<IntakeImage>();
        var parts = ImmutableArray.CreateBuilder<OfferedImage>(offered.Count);
        for (var position = 0; position < offered.Count; position++)
        {
            var index = firstIndex + accepted.Count;
            var (rawName, content) = offered[position];
            var name = CleanName(rawName, index);
            var reason = unreadable?.Invoke(position) ?? (content is not { Length: > 0 } ? "Empty: image has no bytes" : refuse?.Invoke(position));
            if (reason is null && content is not null)
            {
                try
                {
                    var info = ImageProbe.Identify(content, ImageLimits.Upload);
                    accepted.Add(new IntakeImage(position, index, name, content, info));
                    parts.Add(new OfferedImage(name, index, null));
                    continue;
                }
                catch (ImageRejectedException e)
                {
                    reason = $"{e.Reason}: {e.Message}";
                }
            }
            parts.Add(new OfferedImage(name, null, reason));
        }
        return (accepted, parts.MoveToImmutable());
    }

    /// <summary>
    /// The bytes of each offered image, in order: its own, or read from its staging blob (one at a time: a call carries
    /// at most a chunk of the gateway's bytes), with the reason a staged one could not be read.
    /// </summary>
    public static async Task<(List<(string? Name, byte[]? Content)> Offered, string?[] Unreadable)> LoadAsync(
        ImageStaging staging, string tenantId, string jobId, IReadOnlyList<(string? Name, byte[]? Content, StagedImage? Staged)> images)
    {
        var offered = new List<(string?, byte[]?)>(images.Count);
        var unreadable = new string?[images.Count];
        for (var i = 0; i < images.Count; i++)
        {
            var (name, content, staged) = images[i];
            if (staged is not null) (content, unreadable[i]) = await staging.ReadAsync(tenantId, jobId, staged);
            offered.Add((name, content));
        }
        return (offered, unreadable);
    }

    /// <summary>
    /// Runs <paramref name="intake"/>, then deletes the staging blobs of <paramref name="staged"/> whatever happened:
    /// stored or refused (the image, or the whole call), a staged image has served its purpose.
    /// </summary>
    public static async Task<T> DeletingStagedAsync<T>(ImageStaging staging, string tenantId, string jobId, IEnumerable<StagedImage?> staged, Func<Task<T>> intake)
    {
        var ids = staged.OfType<StagedImage>().Select(s => s.Id).ToList();
        try
        {
            return await intake();
        }
        finally
        {
            if (ids.Count > 0) await staging.DeleteAsync(tenantId, jobId, ids);
        }
    }

    /// <summary>Writes the accepted images' blobs (<c>inputs/{index}</c>), at most <paramref name="parallelism"/> at a time.</summary>
    public static async Task StoreAsync(IArtifactStore store, string tenantId, string jobId, IReadOnlyList<IntakeImage> accepted, int parallelism)
    {
        using var gate = new SemaphoreSlim(Math.Max(1, parallelism));
        await Task.WhenAll(accepted.Select(async a =>
        {
            await gate.WaitAsync();
            try
            {
                await store.PutAsync(tenantId, jobId, ArtifactKinds.Inputs, a.Index, BinaryData.FromBytes(a.Content), ImageFormats.ContentType(a.Info.Format));
            }
            finally
            {
                gate.Release();
            }
        }));
    }
}
