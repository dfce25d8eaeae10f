"""Iterative stylisation (Gatys et al.): the pixel loop and the classic objective (`optimize`), the
coarse-to-fine pyramid (`pyramid`), the semantic modes (`semantic`), video frames (`video`) and
reconstructions from single layers (`reconstruct`)."""
