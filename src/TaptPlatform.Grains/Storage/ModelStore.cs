using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Storage;

/// <summary>
/// Registered models' folders as blobs in the platform's models container: one blob per file at
/// <c>{prefix}/{file}</c>. Uploads through the API go to <c>uploads/{name}/{id}</c>; an operator may also copy a folder
/// to any prefix (azcopy, Storage Explorer) and register it there.
/// </summary>
public sealed class ModelStore(BlobContainerClient container)
{
    /// <summary>Most files a model folder may hold (a Hugging Face CLIP folder has about ten).</summary>
    public const int MaxFiles = 64;

    private readonly Lazy<Task> _created = new(() => container.CreateIfNotExistsAsync());

    public string ContainerName => container.Name;

    /// <summary>A prefix of path segments made of letters, digits, '-', '_' and '.', without '..' or empty segments.</summary>
    public static string RequirePrefix(string? prefix)
    {
        var p = prefix?.Trim('/') ?? "";
        if (p.Length is 0 or > 200 || p.Split('/').Any(s => s.Length == 0 || s is "." or ".." || !s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            throw new TaptRequestException($"invalid model prefix '{prefix}': path segments of letters, digits, '-', '_' and '.'");
        return p;
    }

    /// <summary>A file name in a model folder: one segment of letters, digits, '-', '_' and '.', not starting with '.'.</summary>
    public static bool IsFileName(string name) =>
        name.Length is > 0 and <= 100 && name[0] != '.' && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>The files directly under the prefix with their sizes; <see cref="TaptRequestException"/> for nested or oddly named ones.</summary>
    public async Task<IReadOnlyList<(string Name, long Bytes)>> ListAsync(string prefix, CancellationToken ct = default)
    {
        await _created.Value;
        var p = RequirePrefix(prefix) + "/";
        var files = new List<(string, long)>();
        await foreach (var item in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, p, ct))
        {
            var name = item.Name[p.Length..];
            if (!IsFileName(name)) throw new TaptRequestException($"'{item.Name}' is not a file a model folder holds (nested folders and odd names are refused)");
            if (files.Count == MaxFiles) throw new TaptRequestException($"the model folder holds more than {MaxFiles} files");
            files.Add((name, item.Properties.ContentLength ?? 0));
        }
        return files;
    }

    /// <summary>Writes a file's content to <paramref name="destination"/>; <see cref="TuningFailedException"/> when it is gone.</summary>
    public async Task DownloadAsync(string prefix, string file, Stream destination, CancellationToken ct = default)
    {
        await _created.Value;
        try
        {
            await Blob(prefix, file).DownloadToAsync(destination, ct);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new TuningFailedException($"model file '{prefix}/{file}' is no longer in storage");
        }
    }

    public async Task UploadAsync(string prefix, string file, Stream content, CancellationToken ct = default)
    {
        await _created.Value;
        await Blob(prefix, file).UploadAsync(content, overwrite: true, ct);
    }

    /// <summary>Deletes every blob under the prefix (a failed upload's files).</summary>
    public async Task DeletePrefixAsync(string prefix, CancellationToken ct = default)
    {
        await _created.Value;
        await foreach (var item in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, RequirePrefix(prefix) + "/", ct))
            await container.GetBlobClient(item.Name).DeleteIfExistsAsync(cancellationToken: ct);
    }

    private BlobClient Blob(string prefix, string file) =>
        IsFileName(file) ? container.GetBlobClient($"{RequirePrefix(prefix)}/{file}") : throw new TaptRequestException($"invalid model file name '{file}'");
}
