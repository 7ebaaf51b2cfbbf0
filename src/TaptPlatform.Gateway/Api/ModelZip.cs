using System.IO.Compression;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// A model folder sent as a zip: spooled to a temporary file (a zip is read from its end), its entries checked (flat
/// file names, optionally under one top folder; a bounded count; declared and actual sizes within the limit, so a zip
/// bomb stops at the limit) and each stored as a blob under the prefix.
/// </summary>
internal static class ModelZip
{
    public static async Task UploadAsync(Stream body, ModelStore store, string prefix, long maxBytes, CancellationToken ct)
    {
        var spool = Path.Combine(Path.GetTempPath(), $"tapt-model-upload-{Guid.NewGuid():N}.zip");
        try
        {
            await using (var file = new FileStream(spool, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                await CopyLimitedAsync(body, file, maxBytes, "the zip", ct);
            ZipArchive zip;
            try
            {
                zip = new ZipArchive(File.OpenRead(spool), ZipArchiveMode.Read);
            }
            catch (InvalidDataException)
            {
                throw new TaptRequestException("the body is not a zip file");
            }
            using (zip)
            {
                var files = Entries(zip);
                if (files.Sum(f => f.Entry.Length) > maxBytes) throw new TaptRequestException($"the zip's files hold more than {maxBytes} bytes (Tapt:Gateway:MaxModelBytes)");
                long total = 0;
                foreach (var (entry, fileName) in files)
                {
                    await using var content = entry.Open();
                    var spooledEntry = spool + "." + fileName;
                    await using (var target = new FileStream(spooledEntry, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose | FileOptions.Asynchronous))
                    {
                        total += await CopyLimitedAsync(content, target, maxBytes - total, $"'{fileName}'", ct);
                        target.Position = 0;
                        await store.UploadAsync(prefix, fileName, target, ct);
                    }
                }
            }
        }
        finally
        {
            File.Delete(spool);
        }
    }

    private static List<(ZipArchiveEntry Entry, string Name)> Entries(ZipArchive zip)
    {
        var entries = zip.Entries.Where(e => !e.FullName.EndsWith('/')).ToList();
        if (entries.Count == 0) throw new TaptRequestException("the zip holds no files");
        if (entries.Count > ModelStore.MaxFiles) throw new TaptRequestException($"the zip holds {entries.Count} files; a model folder has at most {ModelStore.MaxFiles}");
        // A folder zipped with its name ("clip/config.json", …) or from inside it ("config.json", …).
        var top = entries.Select(e => e.FullName.Split('/')).Where(p => p.Length == 2).Select(p => p[0]).Distinct().ToList();
        var root = top.Count == 1 && entries.All(e => e.FullName.StartsWith(top[0] + "/", StringComparison.Ordinal)) ? top[0] + "/" : "";
        var files = new List<(ZipArchiveEntry, string)>(entries.Count);
        foreach (var e in entries)
        {
            var name = e.FullName[root.Length..];
            if (!ModelStore.IsFileName(name)) throw new TaptRequestException($"'{e.FullName}' is not a file a model folder holds (nested folders and odd names are refused)");
            files.Add((e, name));
        }
        if (files.Select(f => f.Item2).Distinct(StringComparer.Ordinal).Count() != files.Count) throw new TaptRequestException("the zip names a file twice");
        return files;
    }

    /// <summary>Copies at most <paramref name="limit"/> bytes; <see cref="TaptRequestException"/> past it. Returns the bytes copied.</summary>
    private static async Task<long> CopyLimitedAsync(Stream source, Stream target, long limit, string what, CancellationToken ct)
    {
        var buffer = new byte[1 << 16];
        long copied = 0;
        int n;
        while ((n = await source.ReadAsync(buffer, ct)) > 0)
        {
            copied += n;
            if (copied > limit) throw new TaptRequestException($"{what} is larger than the {limit} bytes a model may still hold (Tapt:Gateway:MaxModelBytes)");
            await target.WriteAsync(buffer.AsMemory(0, n), ct);
        }
        return copied;
    }
}
