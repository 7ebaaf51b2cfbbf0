using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision.Apt;
using TaptPlatform.Vision.Caching;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;

namespace TaptPlatform.Grains.Training;

/// <summary>
/// What the evaluation-thread units of one prompt training step share: the leased model, the images, and what the
/// units made (a run, its passes, their generators), freed together when the step ends. Everything native is made and
/// used only inside a unit, on the engine's thread; the step awaits each unit before the next, so none runs at the same
/// time as another.
/// </summary>
internal sealed class TrainingStepUnits(EvaluationEngine engine, string tenantId, BoundedCache<string, LoadedModel>.Lease model, EncodedImageDataset data,
    LabelVocabulary vocabulary, CancellationToken cancellation) : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    public LoadedModel Model => model.Value;
    public EncodedImageDataset Data => data;
    public LabelVocabulary Vocabulary => vocabulary;

    /// <summary>Frees <paramref name="resource"/> with the step.</summary>
    public T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    /// <summary>One unit on the engine thread.</summary>
    public Task<T> RunAsync<T>(Func<CancellationToken, T> unit) => engine.RunAsync(tenantId, unit, cancellation);

    /// <summary>Work in slices of the engine's <see cref="EvaluationEngine.Slice"/>, the tenants' other units between them.</summary>
    public Task InSlicesAsync(Func<CancellationToken, bool> slice) => engine.RunInSlicesAsync(tenantId, slice, cancellation);

    /// <summary><see cref="AptRun.Validate"/> in slices.</summary>
    public async Task<AptAccuracy> ValidateAsync(PromptSet prompts, IReadOnlyList<int> indices, double epsilon, int seed)
    {
        var pass = await RunAsync(_ => Own(new AptValidationPass(Model.Clip, prompts, vocabulary, data, indices, epsilon, seed)));
        await InSlicesAsync(token => pass.RunFor(engine.Slice, () => token.IsCancellationRequested));
        return pass.Result;
    }

    public void Dispose()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
        model.Dispose();
    }
}
