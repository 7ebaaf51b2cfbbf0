using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace TaptPlatform.Vision.Prompts;

/// <summary>
/// The labels to classify against and, per label, the prompt text the text encoder reads
/// (default: the hand-crafted "a photo of a {label}."). Learned text prompts replace the first
/// tokens of each prompt text, so "a photo of a cat." becomes "[v1][v2] of a cat.".
/// </summary>
public sealed record LabelVocabulary
{
    public const string DefaultTemplate = "a photo of a {0}.";

    public LabelVocabulary(IReadOnlyList<string> labels, IReadOnlyList<string>? promptTexts = null, string template = DefaultTemplate)
    {
        if (labels.Count < 2) throw new ArgumentException("a vocabulary needs at least two labels");
        if (labels.Any(string.IsNullOrWhiteSpace)) throw new ArgumentException("labels must not be empty");
        if (labels.Distinct(StringComparer.Ordinal).Count() != labels.Count) throw new ArgumentException("labels must be distinct");
        if (promptTexts is not null && promptTexts.Count != labels.Count) throw new ArgumentException("one prompt text per label");
        if (!template.Contains("{0}", StringComparison.Ordinal)) throw new ArgumentException("the template needs a {0} placeholder for the label");
        Labels = labels;
        PromptTexts = promptTexts is null
            ? labels.Select(l => string.Format(System.Globalization.CultureInfo.InvariantCulture, template, l)).ToArray()
            : promptTexts.Select((p, i) => string.IsNullOrWhiteSpace(p) ? string.Format(System.Globalization.CultureInfo.InvariantCulture, template, labels[i]) : p).ToArray();
        Key = ContentHash(Labels, PromptTexts);
    }

    public IReadOnlyList<string> Labels { get; }
    public IReadOnlyList<string> PromptTexts { get; }
    public int Count => Labels.Count;

    /// <summary>
    /// Identity for caches: the <see cref="ContentHash"/> of the labels and prompt texts (built once: every
    /// text-feature call looks it up). Equal keys give equal token ids and text features.
    /// </summary>
    public string Key { get; }

    /// <summary>
    /// SHA-256 (lower-case hex) of the labels and their prompt texts in order, each as its UTF-8 bytes after their
    /// length (32-bit little-endian), label then text. Vocabulary references across the cluster carry this hash.
    /// </summary>
    public static string ContentHash(IReadOnlyList<string> labels, IReadOnlyList<string> promptTexts)
    {
        if (labels.Count != promptTexts.Count) throw new ArgumentException("one prompt text per label");
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[4];
        for (var i = 0; i < labels.Count; i++)
            foreach (var text in new[] { labels[i], promptTexts[i] })
            {
                var bytes = Encoding.UTF8.GetBytes(text);
                BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
                sha.AppendData(length);
                sha.AppendData(bytes);
            }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
