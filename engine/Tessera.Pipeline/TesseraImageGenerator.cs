using Microsoft.Extensions.AI;
using Tessera.Data;

namespace Tessera.Pipeline;

/// <summary>
/// Tessera behind .NET's image-generation abstraction (<see cref="IImageGenerator"/>, Microsoft.Extensions.AI):
/// text-to-image and edits (the first original image conditions the AR, as <c>--image</c> does) over the same
/// pipeline as <see cref="ITextToImage"/>. Options map as follows: <c>Count</c> → images with seeds seed, seed + 1, …;
/// <c>ImageSize</c> must be the model's size or null; <c>MediaType</c> image/png or null; <c>ResponseFormat</c> Data
/// (bytes) or null; <c>AdditionalProperties</c> "seed", "steps", "cfg", "sampler", "temperature", "top_k", "top_p". Every
/// value is checked as the CLI and the server check it (<see cref="GenerationLimits"/>). Registered by <c>AddTessera</c>.
/// </summary>
public sealed class TesseraImageGenerator(ImageGenerator generator) : IImageGenerator
{
    public const string MediaType = "image/png";

    private readonly ImageGeneratorMetadata _metadata = new("tessera", null, generator.Package.Manifest.Name);

    public async Task<ImageGenerationResponse> GenerateAsync(ImageGenerationRequest request, ImageGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var prompt = request.Prompt ?? throw new ArgumentException("The request has no prompt; Tessera generates from text.", nameof(request));
        int size = generator.Package.Manifest.Decoder.ImageSize;
        if (options?.ImageSize is { } wanted && (wanted.Width != size || wanted.Height != size))
            throw new ArgumentException($"ImageSize {wanted.Width}x{wanted.Height}: model {_metadata.DefaultModelId} generates {size}x{size} only; leave ImageSize null or set it to that.", nameof(options));
        if (options?.MediaType is { } media && !string.Equals(media, MediaType, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"MediaType {media}: Tessera returns {MediaType}.", nameof(options));
        if (options?.ResponseFormat is { } format && format != ImageGenerationResponseFormat.Data)
            throw new NotSupportedException($"ResponseFormat {format}: Tessera returns the image bytes (Data); it hosts no image URLs.");
        int count = options?.Count ?? 1;
        var extra = options?.AdditionalProperties;
        T? Get<T>(string key) where T : struct => extra is not null && extra.TryGetValue(key, out var v) && v is not null
            ? v is T t ? t : (T)Convert.ChangeType(v, typeof(T), System.Globalization.CultureInfo.InvariantCulture)
            : null;
        ulong seed = Get<ulong>("seed") ?? 0;
        GenerationLimits.ValidateCount(seed, count, GenerationLimits.MaxImages, OptionName);
        byte[]? source = null;
        if (request.OriginalImages?.OfType<DataContent>().FirstOrDefault() is { } original)
            source = ImageFiles.DecodeRgb(original.Data.ToArray(), original.Name ?? "original image", size).Rgb;
        else if (request.OriginalImages?.Any() == true)
            throw new ArgumentException("OriginalImages: give the image as DataContent (bytes); Tessera does not fetch URLs.", nameof(request));

        var contents = new List<AIContent>();
        var results = new List<GenerationResult>();
        for (int i = 0; i < count; i++)
        {
            var r = new GenerationRequest(prompt)
            {
                Seed = seed + (ulong)i, Steps = Get<int>("steps"), Cfg = Get<double>("cfg"), Temperature = Get<double>("temperature"),
                TopK = Get<int>("top_k"), TopP = Get<double>("top_p"), SourceRgb = source,
                Sampler = extra is not null && extra.TryGetValue("sampler", out var sm) ? sm?.ToString() : null,
            };
            GenerationLimits.Validate(r, generator.Package, OptionName);
            var result = await Task.Run(() => generator.Generate(r, null, cancellationToken), cancellationToken).ConfigureAwait(false);
            results.Add(result);
            contents.Add(new DataContent(result.Png, MediaType) { Name = $"tessera-{r.Seed}.png" });
        }
        return new ImageGenerationResponse(contents) { RawRepresentation = results };
    }

    /// <summary>How a rejected value is named: the option or the AdditionalProperties key it came from.</summary>
    private static string OptionName(string parameter) => parameter switch
    {
        "n" => "ImageGenerationOptions.Count",
        "prompt" => "ImageGenerationRequest.Prompt",
        _ => $"AdditionalProperties[\"{parameter}\"]",
    };

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ImageGeneratorMetadata)) return _metadata;
        return serviceType.IsInstanceOfType(this) ? this : serviceType.IsInstanceOfType(generator) ? generator : null;
    }

    /// <summary>The pipeline belongs to the service provider (or whoever created it); nothing to release here.</summary>
    public void Dispose() { }
}
