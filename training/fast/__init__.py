"""Fast style networks (Johnson et al.): the LightningModule (`module`), the photo data module
(`data`), the checkpoint contract with export (`checkpoint`) and `impasto train`'s LightningCLI
(`cli`)."""
