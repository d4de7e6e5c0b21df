// The cluster front keeps the same BatchingMetrics counters (queue depth, per-stage latency) as one process does.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("Tessera.Cluster")]
