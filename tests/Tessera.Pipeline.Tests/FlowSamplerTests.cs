using Tessera.Pipeline;
using Tessera.Pipeline.Sampling;

namespace Tessera.Pipeline.Tests;

/// <summary>
/// The decoder's flow-matching samplers on a velocity field with a known answer: data x₀ ~ N(μ, s²) per dimension and
/// x_t = (1 − t)·x₀ + t·ε. The marginal flow then maps Gaussians to Gaussians, x(t) = (1 − t)·μ + σ(t)·z with
/// σ(t) = √((1 − t)²s² + t²), so the exact ODE solution from x(1) = z is x(0) = μ + s·z and the velocity is
/// v(x, t) = −μ + σ'(t)/σ(t)·(x − (1 − t)·μ).
/// </summary>
[TestClass]
public sealed class FlowSamplerTests
{
    private const int Dim = 64;
    private const double S = 0.5;

    private static (double[] Mu, float[] Z) Problem()
    {
        var rng = new Tessera.Data.SplitMix64(7);
        var mu = Enumerable.Range(0, Dim).Select(_ => 2 * rng.NextDouble() - 1).ToArray();
        var z = DecoderStage.Gaussian(Dim, 11);
        return (mu, z);
    }

    private static float[] Velocity(double[] mu, float[] x, double t)
    {
        double sigma = Math.Sqrt((1 - t) * (1 - t) * S * S + t * t), dsigma = (-(1 - t) * S * S + t) / sigma;
        var v = new float[x.Length];
        for (int i = 0; i < x.Length; i++) v[i] = (float)(-mu[i] + dsigma / sigma * (x[i] - (1 - t) * mu[i]));
        return v;
    }

    /// <summary>Runs a sampler to t = 0 on the analytic field; returns the result, RMS error and evaluations used.</summary>
    private static (float[] X, double Error, int Evaluations) Solve(string sampler, int steps, double shift = 3.0)
    {
        var (mu, z) = Problem();
        var solver = FlowSamplers.Create(sampler, (float[])z.Clone(), FlowSchedule.Times(steps, shift));
        int evaluations = 0;
        while (!solver.Finished)
        {
            solver.Accept(Velocity(mu, solver.EvaluationInput, solver.EvaluationTime));
            evaluations++;
        }
        double sum = 0;
        for (int i = 0; i < Dim; i++) { double e = solver.X[i] - (mu[i] + S * z[i]); sum += e * e; }
        return (solver.X, Math.Sqrt(sum / Dim), evaluations);
    }

    [TestMethod]
    [DataRow(FlowSamplers.Heun)]
    [DataRow(FlowSamplers.DpmSolver2M)]
    public void HigherOrderSamplersIntegrateMoreAccuratelyThanEulerAtTheSameStepCount(string sampler)
    {
        foreach (int steps in new[] { 8, 12 })
        {
            double euler = Solve(FlowSamplers.Euler, steps).Error, better = Solve(sampler, steps).Error;
            // In a float64 model of this test: Euler 0.16 / 0.11 at 8 / 12 steps; Heun 0.11 / 0.056; DPM-Solver++(2M) 0.13 / 0.064.
            Assert.IsLessThan(euler * 0.9, better, $"{sampler} at {steps} steps: error {better:G3} vs Euler {euler:G3}");
        }
    }

    [TestMethod]
    public void DpmSolverAtTwentyEvaluationsBeatsEulerAtForty()
    {
        var dpm = Solve(FlowSamplers.DpmSolver2M, 20);
        var euler = Solve(FlowSamplers.Euler, 40);
        Assert.AreEqual(20, dpm.Evaluations);
        Assert.IsLessThan(euler.Error, dpm.Error, $"DPM-Solver++(2M) 20 steps {dpm.Error:G3} vs Euler 40 steps {euler.Error:G3}");
    }

    [TestMethod]
    [DataRow(FlowSamplers.Heun)]
    [DataRow(FlowSamplers.DpmSolver2M)]
    public void ErrorShrinksFasterThanFirstOrderWhenStepsDouble(string sampler)
    {
        // Second order cuts the error by ~4x per doubling of the steps, first order (Euler) by ~2x.
        double coarse = Solve(sampler, 20).Error, fine = Solve(sampler, 40).Error;
        double eulerRatio = Solve(FlowSamplers.Euler, 40).Error / Solve(FlowSamplers.Euler, 20).Error;
        Assert.IsGreaterThan(0.45, eulerRatio, $"Euler's error ratio {eulerRatio:G3} (first order: about 0.5)");
        Assert.IsLessThan(0.35, fine / coarse, $"{sampler}: error {coarse:G3} at 20 steps, {fine:G3} at 40");
    }

    [TestMethod]
    [DataRow(FlowSamplers.Euler)]
    [DataRow(FlowSamplers.Heun)]
    [DataRow(FlowSamplers.DpmSolver2M)]
    public void SamplersAreDeterministic(string sampler)
    {
        var a = Solve(sampler, 5).X;
        var b = Solve(sampler, 5).X;
        CollectionAssert.AreEqual(a, b);
    }

    [TestMethod]
    public void EvaluationCountsMatchWhatTheSolversAsk()
    {
        foreach (var name in FlowSamplers.Names)
            foreach (int steps in new[] { 1, 4, 7 })
                Assert.AreEqual(FlowSamplers.Evaluations(name, steps), Solve(name, steps).Evaluations, $"{name} at {steps} steps");
        Assert.AreEqual(7, FlowSamplers.Evaluations(FlowSamplers.Heun, 4));
    }

    [TestMethod]
    public void OneStepOfEveryFirstOrderUpdateIsTheEulerStep()
    {
        // DPM-Solver++'s first-order (data-prediction) update is exactly Euler in flow matching; with one step both
        // go straight from t = 1 to t = 0.
        var euler = Solve(FlowSamplers.Euler, 1).X;
        var dpm = Solve(FlowSamplers.DpmSolver2M, 1).X;
        for (int i = 0; i < Dim; i++) Assert.AreEqual(euler[i], dpm[i], 1e-6f);
    }

    [TestMethod]
    public void UnknownSamplerNamesTheKnownOnes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => FlowSamplers.Create("ddim", new float[4], FlowSchedule.Times(4, 3)));
        StringAssert.Contains(e.Message, "euler, heun, dpm2m");
    }

    [TestMethod]
    public void ASolverRefusesMoreVelocitiesThanItNeeds()
    {
        var solver = FlowSamplers.Create(FlowSamplers.Euler, new float[4], FlowSchedule.Times(1, 3));
        solver.Accept(new float[4]);
        Assert.IsTrue(solver.Finished);
        Assert.ThrowsExactly<InvalidOperationException>(() => solver.Accept(new float[4]));
    }
}
