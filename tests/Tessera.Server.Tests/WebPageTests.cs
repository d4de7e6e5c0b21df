using PuppeteerSharp;
using Tessera.Pipeline;

namespace Tessera.Server.Tests;

/// <summary>
/// The web page at / in Debian's headless chromium, driven through PuppeteerSharp: type a prompt, press Generate,
/// watch the progress bar, and check the image against the API's bytes for the same seed.
/// </summary>
[TestClass]
public sealed class WebPageTests
{
    private const string Chromium = "/usr/bin/chromium";
    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    [TestMethod]
    public async Task ThePageGeneratesAnImageWithProgressInHeadlessChromium()
    {
        if (!File.Exists(Chromium)) Assert.Inconclusive($"{Chromium} is not installed (apt-get install chromium; .ci/run installs it).");
        await using var s = await ServerTests.Running.StartOnSocket();
        var profile = Directory.CreateTempSubdirectory("tessera-chromium-");
        try
        {
            // Debian's chromium, never a downloaded browser.
            await using var browser = await Puppeteer.LaunchAsync(new LaunchOptions
            {
                ExecutablePath = Chromium, Headless = true, UserDataDir = profile.FullName, Timeout = 60_000,
                Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            });
            await using var page = await browser.NewPageAsync();
            page.DefaultTimeout = 60_000;
            await page.GoToAsync(s.Server.BaseAddress.ToString(), WaitUntilNavigation.Load);
            await page.WaitForSelectorAsync("#generate");

            // Every value the page gives the progress bar, recorded as it is set rather than sampled.
            await page.EvaluateExpressionAsync("""
                (() => {
                  const bar = document.getElementById('progress');
                  const value = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value');
                  window.progressSeen = [];
                  Object.defineProperty(bar, 'value', { get() { return value.get.call(this); }, set(v) { window.progressSeen.push(Number(v)); value.set.call(this, v); } });
                })()
                """);

            // Use the page as a person would: type the prompt and the seed, click Generate.
            await page.EvaluateExpressionAsync("document.getElementById('prompt').value = ''; document.getElementById('seed').value = ''");
            await page.TypeAsync("#prompt", Prompt);
            await page.TypeAsync("#seed", "11");
            await page.ClickAsync("#generate");
            await page.WaitForFunctionAsync("() => ['done', 'error'].includes(document.body.dataset.state)");
            var status = await page.EvaluateExpressionAsync<string>("document.getElementById('status').textContent");
            Assert.AreEqual("done", await page.EvaluateExpressionAsync<string>("document.body.dataset.state"), status);
            await page.WaitForFunctionAsync("() => { const img = document.getElementById('result'); return img.complete && img.naturalWidth > 0; }");
            Assert.AreEqual(64, await page.EvaluateExpressionAsync<int>("document.getElementById('result').naturalWidth"));
            Assert.AreEqual(64, await page.EvaluateExpressionAsync<int>("document.getElementById('result').naturalHeight"));
            StringAssert.StartsWith(status, "done: seed 11");
            var progressSeen = await page.EvaluateExpressionAsync<double[]>("window.progressSeen");
            Assert.IsTrue(progressSeen.Any(p => p > 0 && p < 100), $"the progress bar moved: {string.Join(", ", progressSeen)}");

            var src = await page.EvaluateExpressionAsync<string>("document.getElementById('result').src");
            var png = Convert.FromBase64String(src["data:image/png;base64,".Length..]);
            CollectionAssert.AreEqual(s.Batching.Generator.Generate(new GenerationRequest(Prompt) { Seed = 11 }).Png, png,
                "the page shows the same image the API makes for that seed");
        }
        finally
        {
            try { profile.Delete(recursive: true); } catch (IOException) { }
        }
    }
}
