using System.Collections.Immutable;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// Labelled images into a job that measures or learns from them (evaluations, prompt training): every image's label must
/// be one of the job's vocabulary, the checks and blob writes are <see cref="ImageIntake"/>'s, staged uploads are deleted
/// whatever happens, and the accepted images join <c>entries</c> only after they are stored; the caller's state is
/// saved before the receipt goes back.
/// </summary>
public static class LabelledIntake
{
    /// <param name="closedReason">Why the job takes no images now, or null while it is open.</param>
    /// <param name="maxImages">The job's image limit and the sentence that refuses more.</param>
    public static Task<AddImagesReceipt> AddAsync(ImageStaging staging, IArtifactStore store, int parallelism, string tenantId, string jobId,
        VocabularyVersion vocabulary, ImmutableArray<EvaluationImage> images, List<EvaluationImageEntry> entries, string? closedReason,
        (int Count, string Refusal) maxImages, Func<Task> saveAsync) =>
        ImageIntake.DeletingStagedAsync(staging, tenantId, jobId, images.IsDefault ? [] : images.Select(i => i?.Staged), async () =>
        {
            if (closedReason is not null) throw new TaptRequestException(closedReason);
            if (images.IsDefaultOrEmpty) return new AddImagesReceipt([], [], entries.Count);
            if (entries.Count + images.Length > maxImages.Count) throw new TaptRequestException(maxImages.Refusal);
            var labels = vocabulary.Labels.Select((l, i) => (l.Label, i)).ToDictionary(x => x.Label, x => x.i, StringComparer.Ordinal);
            string? UnknownLabel(int position) => images[position] is { Label: { } l } && labels.ContainsKey(l) ? null
                : $"UnknownLabel: '{images[position]?.Label}' is not a label of vocabulary {vocabulary.Name} v{vocabulary.Version}";
            var (offered, unreadable) = await ImageIntake.LoadAsync(staging, tenantId, jobId, [.. images.Select(i => (i?.Name, i?.Content, i?.Staged))]);
            var (accepted, parts) = ImageIntake.Examine(offered, entries.Count, UnknownLabel, p => unreadable[p]);
            await ImageIntake.StoreAsync(store, tenantId, jobId, accepted, parallelism);
            entries.AddRange(accepted.Select(a => new EvaluationImageEntry(a.Name, labels[images[a.Position].Label], a.Info.Format)));
            await saveAsync();
            return AddImagesReceipt.Of(parts, entries.Count);
        });
}
