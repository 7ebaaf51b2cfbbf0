namespace TaptPlatform.Grains;

/// <summary>How a job grain schedules its images (configuration section <c>Tapt:Jobs</c>).</summary>
public sealed class JobOptions : ISelfValidatingOptions
{
    /// <summary>Images of one job handed to the model grain at once (the engine batches from these).</summary>
    public int MaxInFlight { get; set; } = 16;

    /// <summary>
    /// Model grains per model: jobs are spread over <c>{model}@{n}</c> by job id, and the grains over the
    /// accelerator silos. 1 (the default): one model grain, on one accelerator silo, serves every job of a model.
    /// </summary>
    public int ModelShards { get; set; } = 1;

    /// <summary>Parallel blob uploads while accepting images.</summary>
    public int UploadParallelism { get; set; } = 8;

    /// <summary>First wait after a failed dispatch (no accelerator silo, a silo died); doubles up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Attempts before an image whose tuning fails permanently (unknown model, bad artifact) gets a failed result.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>
    /// How often a running job checks that it is dispatching and writes the results recorded since its last state
    /// write (each result's own blob is stored before it is reported; the state only summarises those blobs).
    /// </summary>
    public TimeSpan WatchdogPeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a running job's slots (its tenant's and the cluster's running-job limits) stay taken without renewal.
    /// A running job renews them from its watchdog (every quarter of this, so keep the watchdog period well below it); a
    /// job that dies for good frees them within this time.
    /// </summary>
    public TimeSpan SlotLease { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>
    /// Results a running job records before it writes its state without waiting for the watchdog (its state is also
    /// written at every change of the job's state). After a crash the results recorded since the last write are
    /// adopted from their blobs on activation, so this bounds that work, not what survives.
    /// </summary>
    public int StateWriteResults { get; set; } = 256;

    /// <summary>
    /// Bytes of accepted images the job grains of one silo keep in memory until each has a result, so dispatching an
    /// image does not read back the blob just written (0: always read the blobs). Past it, images are read from storage.
    /// </summary>
    public long InputMemoryBytes { get; set; } = 128L << 20;

    /// <summary>
    /// Stored images larger than this are not sent to the model grain in the tuning request: it reads the job's input
    /// blob itself, so no grain message carries a large image (Orleans serializes a message whole, into a pooled buffer).
    /// </summary>
    public long InlineImageBytes { get; set; } = 1L << 20;

    public void Validate()
    {
        if (MaxInFlight is < 1 or > 10_000) throw new ArgumentException("Tapt:Jobs:MaxInFlight must be in 1..10000");
        if (ModelShards is < 1 or > 1024) throw new ArgumentException("Tapt:Jobs:ModelShards must be in 1..1024");
        if (UploadParallelism is < 1 or > 256) throw new ArgumentException("Tapt:Jobs:UploadParallelism must be in 1..256");
        if (RetryDelay <= TimeSpan.Zero || MaxRetryDelay < RetryDelay) throw new ArgumentException("Tapt:Jobs:RetryDelay must be positive and at most Tapt:Jobs:MaxRetryDelay");
        if (MaxAttempts is < 1 or > 100) throw new ArgumentException("Tapt:Jobs:MaxAttempts must be in 1..100");
        if (WatchdogPeriod <= TimeSpan.Zero) throw new ArgumentException("Tapt:Jobs:WatchdogPeriod must be positive");
        if (SlotLease <= TimeSpan.Zero || SlotLease > Slots.SlotLeases.MaxLease) throw new ArgumentException($"Tapt:Jobs:SlotLease must be in (0, {Slots.SlotLeases.MaxLease}]");
        if (StateWriteResults < 1) throw new ArgumentException("Tapt:Jobs:StateWriteResults must be at least 1");
        if (InputMemoryBytes < 0) throw new ArgumentException("Tapt:Jobs:InputMemoryBytes must not be negative");
        if (InlineImageBytes < 0) throw new ArgumentException("Tapt:Jobs:InlineImageBytes must not be negative");
    }
}
