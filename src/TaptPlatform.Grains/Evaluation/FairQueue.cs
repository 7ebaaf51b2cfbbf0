namespace TaptPlatform.Grains.Evaluation;

/// <summary>
/// A bounded queue that serves its keys (tenants) in turn: each key has its own FIFO, and <see cref="Take"/> takes the
/// head of the next key that has work, round-robin. A key that queued a hundred items and one that queued one both get
/// the next turn after each other, so a small evaluation waits for at most one work unit of every other tenant, not for
/// everything queued before it. Thread-safe; <see cref="Take"/> blocks until an item arrives or the queue completes.
/// </summary>
public sealed class FairQueue<T>(int capacity)
{
    private readonly Dictionary<string, Queue<T>> _byKey = new(StringComparer.Ordinal);
    private readonly LinkedList<string> _turns = new();   // keys with work, the next to serve first
    private readonly object _gate = new();   // a Monitor, not a Lock: takers wait on it
    private int _count;
    private bool _completed;

    public int Count
    {
        get { lock (_gate) return _count; }
    }

    /// <summary>
    /// Queues the item under its key; false when the queue is full or completed. <paramref name="ignoreCapacity"/> admits
    /// an item that continues one already taken (it replaces that one in the count of work admitted).
    /// </summary>
    public bool TryAdd(string key, T item, bool ignoreCapacity = false)
    {
        lock (_gate)
        {
            if (_completed || (_count >= capacity && !ignoreCapacity)) return false;
            if (!_byKey.TryGetValue(key, out var queue)) _byKey[key] = queue = new Queue<T>();
            if (queue.Count == 0) _turns.AddLast(key);
            queue.Enqueue(item);
            _count++;
            Monitor.PulseAll(_gate);
            return true;
        }
    }

    /// <summary>The next key's oldest item (the key then goes to the back of the turns); false once completed and empty.</summary>
    public bool TryTake(out T item, out string key)
    {
        lock (_gate)
        {
            while (_turns.Count == 0)
            {
                if (_completed)
                {
                    item = default!;
                    key = "";
                    return false;
                }
                Monitor.Wait(_gate);
            }
            key = _turns.First!.Value;
            _turns.RemoveFirst();
            var queue = _byKey[key];
            item = queue.Dequeue();
            _count--;
            if (queue.Count > 0) _turns.AddLast(key);
            else _byKey.Remove(key);
            return true;
        }
    }

    /// <summary>No more items: takers drain what is queued, then stop.</summary>
    public void CompleteAdding()
    {
        lock (_gate)
        {
            _completed = true;
            Monitor.PulseAll(_gate);
        }
    }
}
