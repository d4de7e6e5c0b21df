using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Models.Tests;

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

    [TestMethod]
    public void ATinyModuleTrainsAndItsLossDrops()
    {
        manual_seed(0);
        // Learn y = 3x - 1 + noise with a 1-16-1 MLP.
        using var scope = NewDisposeScope();
        var model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1));
        var optimizer = optim.Adam(model.parameters(), lr: 0.05);
        var x = rand(256, 1) * 2 - 1;
        var y = x * 3 - 1 + randn(256, 1) * 0.01f;

        float firstLoss = 0, lastLoss = 0;
        for (int step = 0; step < 60; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(model.forward(x), y);
            loss.backward();
            optimizer.step();
            if (step == 0) firstLoss = loss.item<float>();
            lastLoss = loss.item<float>();
        }
        Assert.IsTrue(firstLoss > 0.5f, $"the untrained model is wrong at first (loss {firstLoss})");
        Assert.IsTrue(lastLoss < firstLoss / 20, $"loss dropped from {firstLoss} to {lastLoss}");
    }
}
