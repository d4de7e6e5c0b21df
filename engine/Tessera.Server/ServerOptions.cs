using Tessera.Pipeline.Batching;

namespace Tessera.Server;

/// <summary>What <c>tessera serve</c> listens on and how it bounds work.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind; 127.0.0.1 unless the operator says otherwise.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Port; 0 picks a free one (printed at start).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>When set, every /v1 request needs <c>Authorization: Bearer &lt;key&gt;</c>.</summary>
    public string? ApiKey { get; init; }
    public BatchingOptions Batching { get; init; } = new();
    /// <summary>A request still unfinished after this is cancelled and answered 504.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Most images per request.</summary>
    public int MaxN { get; init; } = 4;
    /// <summary>Longest prompt in characters (the model's token limit is checked as well).</summary>
    public int MaxPromptChars { get; init; } = 1000;
    /// <summary>Largest request body (edits carry an image).</summary>
    public long MaxBodyBytes { get; init; } = 8 << 20;
    /// <summary>Largest source image for edits, checked from its header before it is decoded (default 4096 per side, 16 MP).</summary>
    public Tessera.Data.ImageLimits ImageLimits { get; init; } = Tessera.Data.ImageLimits.Default;
    /// <summary>
    /// Host names (the Host header) the server answers besides loopback names (localhost, *.localhost) and IP
    /// literals; "*" allows any. Checking the Host header stops DNS rebinding: a web page on evil.example that
    /// re-points its name at 127.0.0.1 still sends "Host: evil.example", and is refused.
    /// </summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
}
