"""The models: the VGG encoder and its weight sources (`vgg`, `weights`), the loss terms (`losses`,
`semantic_losses`), the `Objective` that runs them (`objective`), semantic maps and masks
(`semantic`), the transformer networks (`transformer`) and the bundled styles with their model
card (`zoo`). Import from the submodules; this package file imports nothing, so `impasto.models.zoo`
stays torch-free for the server.
"""
