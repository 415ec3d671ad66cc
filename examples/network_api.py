"""Run the built-in digits MLP, int8, on an 8×8 weight-stationary array (README, "Networks")."""

from ftaccel import Network
from ftaccel.app.datasets import digits
from ftaccel.config import AcceleratorConfig

net = Network.builtin("digits-mlp")                 # int8, calibrated on the training split
test = digits("test").head(20)                      # 20 of the 540 test images
config = AcceleratorConfig(rows=8, cols=8, dataflow="ws")
result = net.run(test.images, labels=test.labels, engine="cycle", config=config)
print(f"top-1 {result.accuracy:.1%} (float {result.float_accuracy:.1%}), "
      f"{result.cycles} cycles, utilisation {result.utilisation():.1%}")
for layer in result.layers:
    print(f"  {layer.name}: {layer.M}x{layer.K} @ {layer.K}x{layer.N}, {layer.cycles} cycles")
# engine="golden" is the fast functional model, engine="rtl" simulates the generated Verilog.
