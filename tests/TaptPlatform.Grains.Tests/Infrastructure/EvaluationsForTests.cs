using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tests.Infrastructure;

/// <summary>Evaluations of Fashion-MNIST test images, labelled, created straight on the grains.</summary>
public static class EvaluationsForTests
{
    /// <summary>Creates an evaluation of the tenant's "fashion" vocabulary and "default" configuration holding the first <paramref name="images"/> test images.</summary>
    public static async Task<IEvaluationJobGrain> CreateAsync(IGrainFactory client, ITenantGrain tenant, string tenantId, int images, EvaluationRequest request)
    {
        var id = EvaluationDefinition.NewId();
        var evaluation = client.GetGrain<IEvaluationJobGrain>(id);
        await evaluation.CreateAsync(new EvaluationDefinition(tenantId, id, await tenant.GetVocabularyAsync("fashion"),
            await tenant.GetPromptConfigurationAsync("default"), request, DateTimeOffset.UtcNow));
        await evaluation.AddImagesAsync(tenantId, [.. Enumerable.Range(0, images).Select(i =>
            new EvaluationImage($"e{i}.png", TestModels.FashionLabels[TestModels.FashionTest.Labels[i]], TestModels.FashionPng(i)))]);
        return evaluation;
    }

    /// <summary>Polls the evaluation until <paramref name="until"/> holds (or throws after the timeout).</summary>
    public static async Task<EvaluationStatus> WaitAsync(IEvaluationJobGrain evaluation, string tenantId, Func<EvaluationStatus, bool> until, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var s = await evaluation.GetStatusAsync(tenantId);
            if (until(s)) return s;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"evaluation {s.JobId} still {s.State} ({s.OutcomesRecorded}/{s.OutcomesTotal}) after {timeout}");
            await Task.Delay(100);
        }
    }
}
