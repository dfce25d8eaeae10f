"""The bundled styles (`<name>.onnx`, `.json` card, `.png` preview, `.style.jpg` painting) and the
model-card schema (`card`). Torch-free."""
