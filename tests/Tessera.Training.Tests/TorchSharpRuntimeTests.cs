using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Training.Tests;

[TestClass]
public sealed class TorchSharpRuntimeTests
{
    [TestMethod]
    public void TorchSharpLoadsOnThisMachine()
    {
        StringAssert.Contains(TorchRuntime.Describe(), "libtorch CPU");
        using var x = ones(2, 3);
        Assert.AreEqual(6f, x.sum().item<float>());
    }
}
