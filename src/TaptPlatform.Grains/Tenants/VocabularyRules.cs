using System.Collections.Immutable;
using System.Globalization;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tenants;

/// <summary>What a vocabulary definition must be before a tenant stores it.</summary>
internal static class VocabularyRules
{
    public static (string Name, ImmutableArray<LabelEntry> Labels, string Template) Validate(VocabularyDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var name = Identifiers.IsValidName(definition.Name) ? definition.Name : throw new TaptRequestException($"invalid vocabulary name '{definition.Name}'");
        var labels = definition.Labels.IsDefault ? [] : definition.Labels;
        if (labels.Length < 2) throw new TaptRequestException("a vocabulary needs at least two labels");
        if (labels.Length > VocabularyDefinition.MaxLabels) throw new TaptRequestException($"a vocabulary has at most {VocabularyDefinition.MaxLabels} labels");
        if (labels.Any(l => string.IsNullOrWhiteSpace(l.Label) || l.Label.Length > 200 || (l.PromptText?.Length ?? 0) > 500))
            throw new TaptRequestException("labels must be non-empty (at most 200 characters; prompt texts at most 500)");
        if (labels.Select(l => l.Label).Distinct(StringComparer.Ordinal).Count() != labels.Length) throw new TaptRequestException("labels must be distinct");
        var template = string.IsNullOrWhiteSpace(definition.Template) ? VocabularyDefinition.DefaultTemplate : definition.Template;
        if (!template.Contains("{0}", StringComparison.Ordinal) || template.Length > 500) throw new TaptRequestException("the template needs a {0} placeholder for the label");
        try
        {
            _ = string.Format(CultureInfo.InvariantCulture, template, "x");
        }
        catch (FormatException)
        {
            throw new TaptRequestException("the template is not a valid format string");
        }
        return (name, labels, template);
    }
}
