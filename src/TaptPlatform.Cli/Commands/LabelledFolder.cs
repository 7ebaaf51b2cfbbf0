using System.Globalization;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// A folder of labelled images (one subfolder per label, named by the label) as evaluations and prompt training jobs
/// take it: its images in a stable order, and their upload in multipart batches, each refused image printed.
/// </summary>
public static class LabelledFolder
{
    private const int UploadBatch = 50;

    /// <summary>The --images option naming such a folder.</summary>
    public static System.CommandLine.Option<string> Option() => CliOptions.Required("--images", "a folder with one subfolder per label (named by the label; t-shirt/top is the nested folder t-shirt/top) holding its images", "DIR");

    /// <summary>
    /// Every image under the folder's label subfolders, labelled by its subfolder's path relative to the folder (so a
    /// label with a '/', such as "t-shirt/top", is the nested folder t-shirt/top), in a stable order. Files directly in the
    /// folder have no label and are skipped.
    /// </summary>
    public static List<(string Label, string File)> Images(string folder)
    {
        if (!Directory.Exists(folder)) throw new CliException($"--images: no folder '{folder}'");
        var images = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => GatewayClient.ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Select(f => (Label: Path.GetRelativePath(folder, Path.GetDirectoryName(f)!).Replace(Path.DirectorySeparatorChar, '/'), File: f))
            .Where(i => i.Label != ".")
            .OrderBy(i => i.Label, StringComparer.Ordinal).ThenBy(i => i.File, StringComparer.Ordinal)
            .ToList();
        return images.Count > 0 ? images
            : throw new CliException(string.Create(CultureInfo.InvariantCulture, $"--images: '{folder}' has no images in label subfolders ({string.Join(", ", GatewayClient.ImageExtensions)})"));
    }

    /// <summary>
    /// Uploads a folder's <paramref name="images"/> to <paramref name="jobId"/> through <paramref name="upload"/> (one request per
    /// batch, the API's upload receipt back), prints each refused image and returns how many were accepted; none accepted is an error.
    /// A batch the gateway refused whole (a folder the vocabulary does not know) counts as refused images, so the rest still goes up.
    /// </summary>
    public static async Task<int> UploadAsync(string folder, IReadOnlyList<(string Label, string File)> images, string jobId,
        Func<IReadOnlyList<(string Label, string File)>, Task<JsonElement>> upload, TextWriter stdout)
    {
        var accepted = 0;
        foreach (var chunk in images.Chunk(UploadBatch))
        {
            var receipt = await upload(chunk);
            if (receipt.TryGetProperty("acceptedIndices", out var indices)) accepted += indices.GetArrayLength();   // none in a batch refused whole
            foreach (var rejected in receipt.GetProperty("rejected").EnumerateArray())
                stdout.WriteLine($"refused {rejected.GetProperty("name").GetString()}: {(rejected.TryGetProperty("reason", out var why) ? why.GetString() : "")}");
        }
        return accepted > 0 ? accepted : throw new CliException($"no image of {folder} was accepted; {jobId} stays open");
    }
}
