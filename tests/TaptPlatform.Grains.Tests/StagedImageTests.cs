using Azure.Storage.Blobs;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>Images handed to a job grain by reference to a staging blob (the gateway's path for large uploads).</summary>
[Collection(PlatformCollection.Name)]
public sealed class StagedImageTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_job_takes_staged_images_in_order_refuses_tampered_or_missing_ones_deletes_every_staging_blob_and_classifies_them()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("staged");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny, steps: 1);
        var status = await tenant.CreateJobAsync(new JobRequest("fashion", "default"));
        var job = cluster.Client.GetGrain<IJobGrain>(status.JobId);
        var blobs = new BlobServiceClient(platform.Storage.ConnectionString);
        var staging = new ImageStaging(new TenantContainers(blobs));

        // Above the 1 MiB Tapt:Jobs:InlineImageBytes: the model grain (on the other silo) reads its stored blob.
        var large = RandomPng(700);
        Assert.True(large.Length > 1 << 20);
        var good = await StageAsync(staging, tenantId, status.JobId, large);
        var tampered = await StageAsync(staging, tenantId, status.JobId, TestModels.FashionPng(1));
        tampered = tampered with { Sha256 = new string('0', 64) };
        var missing = new StagedImage(Guid.NewGuid().ToString("N"), 1000, new string('0', 64));

        var receipt = await job.AddImagesAsync(tenantId, [
            new JobImage("small.png", TestModels.FashionPng(0)),
            JobImage.Of("large.png", good),
            JobImage.Of("tampered.png", tampered),
            JobImage.Of("missing.png", missing),
            new JobImage("small-2.png", TestModels.FashionPng(2))]);

        Assert.Equal([0, 1, 2], receipt.AcceptedIndices.AsEnumerable());
        Assert.Equal(["small.png", "large.png", "tampered.png", "missing.png", "small-2.png"], receipt.Parts.Select(p => p.Name));
        Assert.StartsWith("Corrupt: the staged image does not have the SHA-256", receipt.Rejected[0].Reason);
        Assert.StartsWith("Missing:", receipt.Rejected[1].Reason);
        Assert.Equal(large, await job.GetInputImageAsync(tenantId, 1));
        Assert.Empty(await StagingBlobsAsync(blobs, tenantId));

        await job.StartAsync(tenantId);
        var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(2));
        Assert.Equal(3, done.Counts.Succeeded);

        // A job that no longer takes images refuses the call, and its staging blob still goes.
        var late = await StageAsync(staging, tenantId, status.JobId, TestModels.FashionPng(3));
        await Assert.ThrowsAsync<TaptRequestException>(() => job.AddImagesAsync(tenantId, [JobImage.Of("late.png", late)]));
        Assert.Empty(await StagingBlobsAsync(blobs, tenantId));
    }

    [Fact]
    public async Task Staging_refuses_a_stream_over_the_limit_and_leaves_nothing_behind()
    {
        var tenantId = PlatformFixture.NewTenant("staging");
        var blobs = new BlobServiceClient(platform.Storage.ConnectionString);
        var staging = new ImageStaging(new TenantContainers(blobs));
        var bytes = new byte[ImageStaging.BlockBytes + 10];
        Random.Shared.NextBytes(bytes);

        Assert.Null(await staging.StageAsync(tenantId, "staging-job-1", bytes.AsMemory(0, 100), new MemoryStream(bytes, 100, bytes.Length - 100), bytes.Length - 1, default));
        Assert.Empty(await StagingBlobsAsync(blobs, tenantId));

        var staged = await staging.StageAsync(tenantId, "staging-job-1", bytes.AsMemory(0, 100), new MemoryStream(bytes, 100, bytes.Length - 100), bytes.Length, default);
        Assert.NotNull(staged);
        Assert.Equal(bytes.Length, staged.Length);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)), staged.Sha256);
        // Its bytes are read back only within the image limits (not an image is for the intake to say).
        var (content, rejection) = await staging.ReadAsync(tenantId, "staging-job-1", staged);
        Assert.Null(rejection);
        Assert.Equal(bytes, content);
        await staging.DeleteAsync(tenantId, "staging-job-1", [staged.Id]);
        Assert.Empty(await StagingBlobsAsync(blobs, tenantId));
        Assert.Throws<TaptRequestException>(() => ImageStaging.BlobName("staging-job-1", "../../jobs/x/inputs/00000"));
    }

    private static async Task<StagedImage> StageAsync(ImageStaging staging, string tenantId, string jobId, byte[] bytes) =>
        (await staging.StageAsync(tenantId, jobId, ReadOnlyMemory<byte>.Empty, new MemoryStream(bytes), 20 << 20, default))!;

    private static async Task<List<string>> StagingBlobsAsync(BlobServiceClient blobs, string tenantId)
    {
        var container = blobs.GetBlobContainerClient(TenantContainers.NameOf(tenantId));
        var names = new List<string>();
        await foreach (var b in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = ImageStaging.Prefix, States = Azure.Storage.Blobs.Models.BlobStates.Uncommitted }))
            names.Add(b.Name);
        return names;
    }

    private static byte[] RandomPng(int side)
    {
        var pixels = new byte[side * side * 3];
        new Random(side).NextBytes(pixels);
        using var image = Image.LoadPixelData<Rgb24>(pixels, side, side);
        using var encoded = new MemoryStream();
        image.SaveAsPng(encoded, new PngEncoder { CompressionLevel = PngCompressionLevel.NoCompression });
        return encoded.ToArray();
    }
}
