"""fleetvision deployment: ONNX export, quantization, latency-budget benchmarks and the torch-free runtime."""
