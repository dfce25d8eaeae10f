"""Iterative stylisation (Gatys et al.): the pixel loop, the classic objective and the coarse-to-fine
scales (`optimize`), the semantic modes (`semantic`), video frames (`video`) and reconstructions from
single layers (`reconstruct`)."""
