using Prometheus;
using Tessera.Pipeline.Batching;

namespace Tessera.Server;

/// <summary>
/// <c>GET /metrics</c>: one queue's <see cref="BatchingMetrics"/> instruments (System.Diagnostics.Metrics) in
/// Prometheus' text format, through prometheus-net's meter adapter on a registry of this server's own (only the
/// instruments whose meter is scoped to this queue, so two servers in one process do not mix). Names are the meter's
/// and the instrument's: tessera_queue_depth, tessera_requests_total{outcome}, tessera_ar_batch_size (histogram), …
/// The adapter exposes .NET counters as Prometheus gauges (a .NET counter may restart; the values are the same).
/// </summary>
public sealed class PrometheusMetrics : IDisposable
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly CollectorRegistry _registry = Metrics.NewCustomRegistry();
    private readonly IDisposable _adapter;

    public PrometheusMetrics(BatchingMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        double[] batchBuckets = BatchingMetrics.BatchSizeBuckets.Select(b => (double)b).ToArray();
        _adapter = MeterAdapter.StartListening(new MeterAdapterOptions
        {
            Registry = _registry,
            // The factory wins over Registry and defaults to the process-wide registry: point it at ours.
            MetricFactory = Metrics.WithCustomRegistry(_registry),
            InstrumentFilterPredicate = instrument => ReferenceEquals(instrument.Meter.Scope, metrics),
            ResolveHistogramBuckets = instrument => instrument.Name.EndsWith("_batch_size", StringComparison.Ordinal) ? batchBuckets : MeterAdapterOptions.DefaultHistogramBuckets,
            // A series that has not changed for a while is still current; the adapter allows a day at most (observable
            // instruments are re-read at every scrape, so only a histogram series idle for a day leaves).
            MetricsExpireAfter = TimeSpan.FromDays(1),
        });
    }

    /// <summary>Writes the current values (observable instruments are read now).</summary>
    public Task WriteAsync(Stream destination, CancellationToken cancel = default) => _registry.CollectAndExportAsTextAsync(destination, cancel);

    /// <summary>The current values as text.</summary>
    public async Task<string> ToTextAsync(CancellationToken cancel = default)
    {
        using var buffer = new MemoryStream();
        await WriteAsync(buffer, cancel);
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    public void Dispose() => _adapter.Dispose();
}
