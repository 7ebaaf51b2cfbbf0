using System.Globalization;

namespace TaptPlatform.Cli.Commands;

/// <summary>What the watched processes used between the start and the end of the load.</summary>
internal sealed record ProcessUsage(IReadOnlyDictionary<int, MemoryUse> Memory, IReadOnlyDictionary<int, double> CpuSeconds, double ClientCpuSeconds,
    IReadOnlyDictionary<int, double> TuningCpuSeconds)
{
    public RuntimeTotals? GatewayRuntime { get; init; }
}

/// <summary>
/// Samples the resident memory of processes on this machine once a second (Linux /proc), and their CPU time (and
/// this client's) between <see cref="MarkStart"/> and <see cref="Stop"/>, with the share of the TAPT engine's own
/// threads (named <c>tapt-tuning-N</c>; they live as long as their process) counted apart.
/// </summary>
internal sealed class ProcessSampler : IDisposable
{
    private const string TuningThreadPrefix = "tapt-tuning-";
    private readonly Dictionary<int, (double Start, double Peak, double End)> _memory = [];
    private readonly Dictionary<int, TimeSpan> _cpuStart = [];
    private readonly Dictionary<int, double> _tuningStart = [];
    private readonly Timer _timer;
    private readonly Lock _gate = new();
    private readonly IReadOnlyList<int> _pids;
    private TimeSpan _clientCpuStart;

    public ProcessSampler(IReadOnlyList<int> pids)
    {
        _pids = pids;
        Sample();
        _timer = new Timer(_ => Sample(), null, 1000, 1000);
    }

    public void MarkStart()
    {
        foreach (var pid in _pids)
        {
            if (Cpu(pid) is { } t) _cpuStart[pid] = t;
            if (ThreadsCpuSeconds(pid, TuningThreadPrefix) is { } tuning) _tuningStart[pid] = tuning;
        }
        _clientCpuStart = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
    }

    private static TimeSpan? Cpu(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return p.TotalProcessorTime;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return null;   // the process ended
        }
    }

    /// <summary>CPU seconds of the process's threads whose name starts with the prefix (Linux /proc), or null when it is gone.</summary>
    private static double? ThreadsCpuSeconds(int pid, string prefix)
    {
        try
        {
            var ticks = 0L;
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task"))
            {
                string stat;
                try { stat = File.ReadAllText(Path.Combine(task, "stat")); }
                catch (IOException) { continue; }   // the thread ended
                // pid (comm) state ppid ... utime stime: the name may hold spaces, so fields are counted after its ')'.
                var open = stat.IndexOf('(');
                var close = stat.LastIndexOf(')');
                if (open < 0 || close < open || !stat.AsSpan(open + 1, close - open - 1).StartsWith(prefix, StringComparison.Ordinal)) continue;
                var fields = stat[(close + 2)..].Split(' ');
                ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            return ticks / ClockTicksPerSecond;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture .NET runs on.</summary>
    private const double ClockTicksPerSecond = 100.0;

    private void Sample()
    {
        foreach (var pid in _pids)
        {
            double mib;
            try
            {
                var line = File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
                if (line is null) continue;
                mib = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
            }
            catch (IOException)
            {
                continue;   // the process ended
            }
            lock (_gate)
                _memory[pid] = _memory.TryGetValue(pid, out var s) ? (s.Start, Math.Max(s.Peak, mib), mib) : (mib, mib, mib);
        }
    }

    /// <summary>Memory per process; CPU seconds since <see cref="MarkStart"/> per process and of this client.</summary>
    public ProcessUsage Stop()
    {
        _timer.Change(Timeout.Infinite, Timeout.Infinite);
        Sample();
        var cpu = new Dictionary<int, double>();
        foreach (var (pid, start) in _cpuStart)
            if (Cpu(pid) is { } end) cpu[pid] = (end - start).TotalSeconds;
        var tuning = new Dictionary<int, double>();
        foreach (var (pid, start) in _tuningStart)
            if (ThreadsCpuSeconds(pid, TuningThreadPrefix) is { } end && end > 0) tuning[pid] = end - start;
        var client = (System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - _clientCpuStart).TotalSeconds;
        lock (_gate)
            return new ProcessUsage(_memory.ToDictionary(kv => kv.Key, kv => new MemoryUse(kv.Value.Start, kv.Value.Peak, kv.Value.End)), cpu, client, tuning);
    }

    public void Dispose() => _timer.Dispose();
}
