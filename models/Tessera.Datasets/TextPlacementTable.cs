using Tessera.Data;

namespace Tessera.Datasets;

/// <summary>Measures the decoder's <see cref="TextPlacement"/> table from the training set (written into packages).</summary>
public static class TextPlacementTable
{
    /// <summary>
    /// Builds the table from samples with known layouts and their token grids: the mean text coverage of each code's
    /// cells (codes never seen get 0).
    /// </summary>
    public static TextPlacement Measure(IEnumerable<(DataSample Sample, int[] Tokens)> samples, int grid, int codebookSize)
    {
        var sum = new double[codebookSize];
        var count = new long[codebookSize];
        foreach (var (sample, tokens) in samples)
        {
            var pooled = GlyphLayout.Pool(sample.Layout.Mask(sample.Word, sample.Size), sample.Size, grid);
            for (int i = 0; i < tokens.Length; i++) { sum[tokens[i]] += pooled[i]; count[tokens[i]]++; }
        }
        return new TextPlacement(Enumerable.Range(0, codebookSize).Select(c => count[c] == 0 ? 0f : (float)(sum[c] / count[c])).ToArray());
    }
}
