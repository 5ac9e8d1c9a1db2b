using Curvature.Autodiff;
using Curvature.Engine;
using Curvature.Models;
using Curvature.Models.Data;
using Curvature.Optimizers;
using Curvature.Spectral;
using Curvature.Training;

// dotnet run -c Release --project samples/QuickStart [-- FASHION_MNIST_FOLDER [WEIGHTS_FILE]]
string dataFolder = args.Length > 0 ? args[0] : FashionMnist.DefaultFolder;   // Debian's dataset-fashion-mnist
string weightsPath = args.Length > 1 ? args[1] : "mlp.safetensors";

var (train, _) = FashionMnist.Load(dataFolder);
var batch = train.Take(512);
NdArray inputs = batch.Inputs.Reshape(batch.Count, -1), labels = batch.Labels;    // [512, 784] floats, int64 classes

var model = Mlp.Create(new RandomGenerator(seed: 1), width: 200);   // PyTorch names: 1.weight, 1.bias, …
var optimizer = new Momentum(learningRate: 0.05, momentum: 0.9);
for (int step = 0; step < 20; step++)                               // training mode, one update per call
{
    double l = Trainer.Step(model, optimizer, "ce", inputs, labels, step, noise: null);
    if (step % 5 == 0) Console.WriteLine($"step {step}: loss {l:0.0000}");
}

var loss = Loss.Function(model, "ce", inputs, labels);              // L(w) on this batch, evaluation mode
var w = model.Parameters().Select(p => (Tensor)p.Data).ToArray();
var (value, grad) = Derivatives.ValueAndGrad(loss, w);              // reverse mode
var g = grad.Select(t => t.Data).ToArray();
var hg = Derivatives.Hvp(loss, w, grad).Product.Select(t => t.Data).ToArray();   // exact H·g, forward-over-reverse
double along = ParameterVector.Dot(g, hg) / ParameterVector.Dot(g, g);          // gᵀHg / gᵀg
var top = Lanczos.Run(new HessianOperator(loss, ParameterVector.Of(model)), iterations: 30, k: 1).Values[0];   // sharpness λmax
Console.WriteLine($"loss {value.ToScalar():0.0000}, |grad| {ParameterVector.Norm(g):0.0000}, curvature along the gradient {along:0.0000}, lambda_max {top:0.0000}");

Safetensors.Save(model, weightsPath);                               // loads in PyTorch with strict=True
var copy = Mlp.Create(new RandomGenerator(seed: 2), width: 200);
Safetensors.Load(copy, weightsPath);                                // every name and shape checked
Console.WriteLine($"{model.ParameterCount():N0} parameters saved to {weightsPath} and read back");
