using System.Globalization;

namespace TaptPlatform.Vision.Training;

/// <summary>
/// The captions CLIP is trained with on Fashion-MNIST: every template × every name of the image's
/// class. The first name of each class is the canonical class name lower-cased, so the usual
/// zero-shot prompt "a photo of a {class name}." is one of the training captions.
/// </summary>
public sealed class CaptionSet
{
    public CaptionSet(IReadOnlyList<string> templates, IReadOnlyList<IReadOnlyList<string>> namesPerClass)
    {
        if (templates.Count == 0 || templates.Any(t => !t.Contains("{0}", StringComparison.Ordinal)))
            throw new ArgumentException("every template needs a {0} placeholder", nameof(templates));
        if (namesPerClass.Count == 0 || namesPerClass.Any(n => n.Count == 0))
            throw new ArgumentException("every class needs at least one name", nameof(namesPerClass));
        Templates = templates;
        NamesPerClass = namesPerClass;
        Captions = namesPerClass
            .Select(names => (IReadOnlyList<string>)templates.SelectMany(t => names.Select(n => string.Format(CultureInfo.InvariantCulture, t, n))).ToArray())
            .ToArray();
    }

    public IReadOnlyList<string> Templates { get; }
    public IReadOnlyList<IReadOnlyList<string>> NamesPerClass { get; }

    /// <summary>All captions of each class (templates × names).</summary>
    public IReadOnlyList<IReadOnlyList<string>> Captions { get; }

    public int ClassCount => NamesPerClass.Count;

    /// <summary>Every caption once, class by class: the tokenizer's training corpus.</summary>
    public IEnumerable<string> Corpus() => Captions.SelectMany(c => c);

    public static readonly IReadOnlyList<string> FashionTemplates =
    [
        "a photo of a {0}.",
        "a photo of the {0}.",
        "a picture of a {0}.",
        "an image of a {0}.",
        "a black and white photo of the {0}.",
        "a black and white photo of a {0}.",
        "a grayscale image of a {0}.",
        "a low resolution photo of a {0}.",
        "a blurry photo of a {0}.",
        "a small photo of the {0}.",
        "a product photo of a {0}.",
        "a close-up photo of a {0}.",
        "{0}",
        "a {0}.",
    ];

    /// <summary>Names per Fashion-MNIST class, canonical (lower-cased) name first.</summary>
    public static readonly IReadOnlyList<IReadOnlyList<string>> FashionNames =
    [
        ["t-shirt/top", "t-shirt", "top", "tee"],
        ["trouser", "pair of trousers", "pants", "jeans"],
        ["pullover", "sweater", "jumper", "knitted sweater"],
        ["dress", "summer dress", "gown", "frock"],
        ["coat", "jacket", "overcoat", "winter coat"],
        ["sandal", "pair of sandals", "summer sandal", "open shoe"],
        ["shirt", "button-up shirt", "blouse", "collared shirt"],
        ["sneaker", "running shoe", "trainers", "sports shoe"],
        ["bag", "handbag", "purse", "tote bag"],
        ["ankle boot", "boot", "bootie", "short boot"],
    ];

    public static CaptionSet Fashion { get; } = new(FashionTemplates, FashionNames);
}
