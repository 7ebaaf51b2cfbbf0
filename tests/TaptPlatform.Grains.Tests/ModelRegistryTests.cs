using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Models;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Silo.Hosting;
using TaptPlatform.Vision.Clip;
using Xunit.Abstractions;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class ModelRegistryTests(PlatformFixture platform, ITestOutputHelper output)
{
    [Fact]
    public async Task A_model_registered_from_blob_storage_is_verified_listed_and_run_by_a_silo_that_never_had_its_folder()
    {
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString);
        var client = cluster.Client;
        var name = "registered-" + Guid.NewGuid().ToString("N")[..8];
        var prefix = $"tests/{name}";
        await UploadFolderAsync(prefix, TestModels.TinyDirectory);

        var registry = client.GetGrain<IModelRegistryGrain>(IModelRegistryGrain.Key);
        var model = await registry.RegisterAsync(name, prefix, "blob");
        Assert.Equal(ClipCheckpoint.Sha256(Path.Combine(TestModels.TinyDirectory, "model.safetensors")), model.Checksum);
        Assert.Equal(Directory.GetFiles(TestModels.TinyDirectory).Length, model.Files.Length);
        Assert.Equal(model.Files.Sum(f => f.Bytes), model.Bytes);
        Assert.True(model.ImageSize > 0 && model.VisionLayers > 0);
        // The same content again is the same registration; the listing has it.
        Assert.Equal(model.RegisteredAt, (await registry.RegisterAsync(name, prefix, "blob")).RegisteredAt);
        Assert.Contains(await registry.ListAsync(), m => m.Name == name && m.Checksum == model.Checksum);

        // A job on the registered model: the accelerator silo fetches, checks and loads it from storage.
        var tenantId = PlatformFixture.NewTenant("registered");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(client, tenantId, name, views: 8, steps: 1);
        var job = client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default", Seed: 3))).JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(0, 3)));
        await job.StartAsync(tenantId);
        var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(2));
        Assert.Equal(new JobCounts(3, 3, 0, done.Counts.Flagged), done.Counts);

        var accelerator = cluster.Silo(1).ServiceProvider;
        Assert.Null(accelerator.GetRequiredService<IOptions<ModelCatalogOptions>>().Value.Directories.GetValueOrDefault(name));
        Assert.Equal(model.Files.Length, accelerator.GetRequiredService<ModelFileCache>().Files.Count);
        Assert.True(accelerator.GetRequiredService<ModelCatalog>().IsLoaded(name));
        var host = await client.GetGrain<IModelGrain>(name).DescribeAsync();
        Assert.True(host.Loaded);
        output.WriteLine($"{name}: {model.Bytes} bytes in {model.Files.Length} files, served by {host.Silo}");
    }

    [Fact]
    public async Task A_folder_that_does_not_load_and_other_content_under_a_taken_name_are_refused_with_the_reason()
    {
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString);
        var registry = cluster.Client.GetGrain<IModelRegistryGrain>(IModelRegistryGrain.Key);
        var id = Guid.NewGuid().ToString("N")[..8];

        // Missing files.
        await UploadFolderAsync($"tests/partial-{id}", TestModels.TinyDirectory, skip: "vocab.json");
        var missing = await Assert.ThrowsAsync<TaptRequestException>(() => registry.RegisterAsync($"partial-{id}", $"tests/partial-{id}", "blob"));
        Assert.Contains("vocab.json", missing.Message);

        // Weights that do not fit the config.
        await UploadFolderAsync($"tests/broken-{id}", TestModels.TinyDirectory, replace: ("model.safetensors", Truncated(Path.Combine(TestModels.TinyDirectory, "model.safetensors"))));
        var broken = await Assert.ThrowsAsync<TaptRequestException>(() => registry.RegisterAsync($"broken-{id}", $"tests/broken-{id}", "blob"));
        Assert.Contains("not a loadable CLIP folder", broken.Message);
        Assert.Null(await registry.GetAsync($"broken-{id}"));

        // Another content under a registered name: the default model's folder under the tiny model's name.
        await UploadFolderAsync($"tests/tiny-{id}", TestModels.TinyDirectory);
        await UploadFolderAsync($"tests/default-{id}", TestModels.DefaultDirectory, skip: "README.md");
        await registry.RegisterAsync($"taken-{id}", $"tests/tiny-{id}", "blob");
        var conflict = await Assert.ThrowsAsync<TaptConflictException>(() => registry.RegisterAsync($"taken-{id}", $"tests/default-{id}", "blob"));
        Assert.Contains("register it under another name", conflict.Message);

        // A job naming a model that is neither registered nor in a folder fails with that reason.
        var unknown = await Assert.ThrowsAsync<TuningFailedException>(() =>
            cluster.Silo(1).ServiceProvider.GetRequiredService<RegisteredModels>().EnsureAsync($"nowhere-{id}"));
        Assert.Contains("unknown model", unknown.Message);
    }

    [Fact]
    public void Loaded_models_are_bounded_and_the_least_recently_used_one_is_unloaded_once_no_work_holds_it()
    {
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions
        {
            Directories = { [TestModels.Tiny] = TestModels.TinyDirectory, ["tiny-copy"] = TestModels.TinyDirectory },
        }), NullLogger<ModelCatalog>.Instance, cache: Options.Create(new ModelCacheOptions { MaxLoaded = 1 }));
        var first = catalog.Rent(TestModels.Tiny, TorchSharp.torch.CPU);
        var held = first.Value;
        using (var second = catalog.Rent("tiny-copy", TorchSharp.torch.CPU))
        {
            // The first model is still leased: evicted from the cache but not freed under its user.
            Assert.False(catalog.IsLoaded(TestModels.Tiny));
            Assert.True(catalog.IsLoaded("tiny-copy"));
            Assert.Equal(1, catalog.Loaded.Count);
            Assert.True(held.Clip.ImageSize > 0);
        }
        first.Dispose();
        Assert.Equal(1, catalog.Loaded.Evictions);
    }

    private async Task UploadFolderAsync(string prefix, string directory, string? skip = null, (string Name, byte[] Content)? replace = null)
    {
        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(new TaptStorageOptions().ModelContainer);
        await container.CreateIfNotExistsAsync();
        foreach (var file in Directory.GetFiles(directory))
        {
            var name = Path.GetFileName(file);
            if (name == skip) continue;
            var blob = container.GetBlobClient($"{prefix}/{name}");
            if (replace is { } r && r.Name == name) await blob.UploadAsync(BinaryData.FromBytes(r.Content), overwrite: true);
            else await blob.UploadAsync(file, overwrite: true);
        }
    }

    private static byte[] Truncated(string path)
    {
        var bytes = File.ReadAllBytes(path);
        return bytes[..(bytes.Length / 2)];
    }
}
